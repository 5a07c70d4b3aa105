"""Mutations for the fuzz tests: byte flips, truncations, deletions, insertions and splices of
real documents, aimed half of the time at the tokens their parsers care about.

Every fuzz test runs derandomized (the same examples on every run and machine, no example
database) with a bounded number of examples; ``KYSO_FUZZ_SCALE=20 pytest tests/test_fuzz_*``
multiplies the examples for a long local run, and ``KYSO_FUZZ_RANDOM=1`` draws new ones each
run (a failure prints the ``@reproduce_failure`` line to replay it).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = max(1, int(os.environ.get("KYSO_FUZZ_SCALE", "1")))
RANDOM = os.environ.get("KYSO_FUZZ_RANDOM", "") not in ("", "0")

PDF_TOKENS = (
    b"obj", b"endobj", b"stream", b"endstream", b"xref", b"trailer", b"startxref", b"%%EOF",
    b"/Length", b"/Prev", b"/Root", b"/Size", b"/Type", b"/Filter", b"/FlateDecode", b"/ObjStm",
    b"/XRef", b"/W", b"/Index", b"/ByteRange", b"/Contents", b"/DSS", b"/OCSPs", b"/CRLs",
    b"/Kids", b"/Parent", b"/Fields", b"/V", b"/AcroForm", b"/Sig", b"/DocTimeStamp",
    b"/SubFilter", b" R", b"<<", b">>", b"[", b"]", b"(", b")", b"<", b">", b"null",
    b" 0 R", b"-1", b"2147483648", b"99999999999999999999", b"1e400", b"#",
)  # fmt: skip
XML_TOKENS = (
    b"<", b">", b"</", b"/>", b'"', b"=", b"&amp;", b"&#0;", b"<!-- -->", b"<?pi x?>",
    b"<![CDATA[x]]>", b' Id="x"', b' URI=""', b' URI="#x"', b"ds:", b"xades:", b"xmlns",
    b' xmlns:ds="urn:x"', b"Algorithm", b"AAAA", b"====", b"\xc3", b"\x00",
)  # fmt: skip
DER_TOKENS = (
    b"\x00", b"\x30\x80", b"\x30\x82\xff\xff", b"\x30\x00", b"\x02\x01\x00", b"\x02\x00",
    b"\x05\x00", b"\x06\x00", b"\x06\x03\x2a\x03\x04", b"\x09\x01\xff", b"\x0c\x01\xff",
    b"\x17\x00", b"\x18\x01Z", b"\xa0\x00", b"\xa0\x80", b"\x31\x00", b"\x84\x80\x00\x00\x00",
)  # fmt: skip


def fuzz_settings(examples: int) -> settings:
    """Reproducible and bounded: ``examples`` (times KYSO_FUZZ_SCALE), each within 5 s."""
    return settings(
        max_examples=examples * SCALE,
        deadline=timedelta(seconds=5),
        derandomize=not RANDOM,
        database=None,
        print_blob=RANDOM,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def hotspots(data: bytes, tokens: Sequence[bytes]) -> list[int]:
    """Offsets of every occurrence of the tokens (where mutations are most interesting)."""
    pattern = re.compile(b"|".join(re.escape(t) for t in tokens if len(t) > 1))
    return sorted({m.start() for m in pattern.finditer(data)})


def _flip(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    if data:
        at = min(at, len(data) - 1)
        data[at] ^= 1 << draw(st.integers(0, 7))
    return data


def _truncate(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    return data[:at]


def _delete(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    del data[at : at + draw(st.integers(1, 64))]
    return data


def _insert_token(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    data[at:at] = draw(st.sampled_from(tokens))
    return data


def _insert_bytes(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return data


def _overwrite(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    chunk = draw(st.sampled_from(tokens))
    data[at : at + len(chunk)] = chunk
    return data


def _splice(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    """Copy a chunk of the document elsewhere in it (duplicated objects, elements, DER)."""
    if data:
        start = draw(st.integers(0, len(data) - 1))
        chunk = data[start : start + draw(st.integers(1, 512))]
        if draw(st.booleans()):
            data[at:at] = chunk
        else:
            data[at : at + len(chunk)] = chunk
    return data


def _renumber(draw: Any, data: bytearray, at: int, tokens: Sequence[bytes]) -> bytearray:
    """Replace the next decimal number (an offset, length, count or object number)."""
    match = re.compile(rb"\d+").search(data, at)
    if match:
        number = draw(st.sampled_from([0, 1, -1, 7, 255, 65536, 2**31, 2**63, 10**20]))
        data[match.start() : match.end()] = str(number).encode()
    return data


OPERATIONS = (
    _flip, _truncate, _delete, _insert_token, _insert_bytes, _overwrite, _splice, _renumber,
)  # fmt: skip


@st.composite
def mutations(draw: Any, original: bytes, tokens: Sequence[bytes]) -> bytes:
    """One to three mutations of ``original``, each at a token half of the time."""
    spots = hotspots(original, tokens)
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        if spots and draw(st.booleans()):
            at = draw(st.sampled_from(spots)) + draw(st.integers(-4, 16))
        else:
            at = draw(st.integers(0, len(data)))
        at = max(0, min(at, len(data)))
        operation = draw(st.sampled_from(OPERATIONS))
        data = operation(draw, data, at, tokens)
    return bytes(data)


@contextlib.contextmanager
def no_unexpected_server_errors(data_dir: Path, port: int) -> Iterator[None]:
    """Fails if the server on ``port`` logged an unexpected error (a 500) meanwhile."""
    log = data_dir / f"server-{port}.log"
    before = log.stat().st_size
    yield
    new = log.read_bytes()[before:].decode(errors="replace")
    assert "unexpected error" not in new, new[-4000:]
