"""certs.patches.read_hex_string is pyHanko's hex-string reader, only faster: the same
object, the same stream position afterwards, the same error, on any bytes."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic

from certs.patches import pyhanko_read_hex_string, read_hex_string

from .fuzztools import fuzz_settings

HEX_AND_SPACE = [b"0", b"9", b"a", b"F", b"ab", b"00" * 40, b" ", b"\n", b"\r\n", b"\x00", b"\t"]
OTHER = [b"\x0c", b"%", b"% comment\n", b"g", b"<", b">", b"(", b"\xff", b"", b"1" * 70_000]
PIECES = st.sampled_from([*HEX_AND_SPACE, *OTHER])


def outcome(reader, data: bytes) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    stream = io.BytesIO(data)
    try:
        result: object = reader(stream)
    except Exception as exc:  # the error itself is what is compared
        return (type(exc).__name__, str(exc)), -1
    return (type(result).__name__, result), stream.tell()


@fuzz_settings(300)
@given(st.lists(PIECES, max_size=12), st.booleans())
def test_same_outcome_as_pyhanko(pieces: list[bytes], closed: bool) -> None:
    data = b"<" + b"".join(pieces) + (b">/Next 1" if closed else b"")
    assert outcome(read_hex_string, data) == outcome(pyhanko_read_hex_string, data)


def test_installed_where_pyhanko_reads_objects() -> None:
    signature = b"<" + b"30 82 0a bc " * 3000 + b"0>"
    read = generic.read_object(io.BytesIO(signature), generic.Reference(1, 0))
    assert generic.read_hex_string_from_stream is read_hex_string
    assert read == bytes.fromhex("30820abc" * 3000 + "00")
