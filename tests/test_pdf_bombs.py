"""Resource attacks on the verifier, each file built here: decompression bombs, deep nesting,
reference cycles, absurd cross-reference sizes, and XML entity bombs.

Every file is refused (exit code 2) or reported as not valid (exit code 1) by ``kyso verify``,
run as a subprocess so that both bounds are real: under 10 s of wall time and under 500 MiB
of memory above what verifying an intact document takes (the peak resident set size of the
process, its VmHWM). The one document that verifies is the one that is validly signed
with a bomb inside the signed content: verification never inflates page content, so the
bomb costs nothing, and the signature really does cover those bytes.

Files are written with pyHanko's writer; PDF syntax is written by hand only where the syntax
is the attack (deep nesting, a cross-reference stream's /Index, a trailer's /Size).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from signer import safexml
from signer.errors import HostileXml
from signer.levels import Level

from .bounds import MIB, Run, bounded, kyso_verify
from .conftest import KysoEnv, Server
from .pdftools import sample, sign_with

# System tests (each bomb goes to `kyso verify` in a subprocess, under CPU and memory bounds):
# only `make test` runs them.
pytestmark = [pytest.mark.system, pytest.mark.slow]

GIB = 1024 * MIB
NESTING = 100_000


# --- Building the attacks ------------------------------------------------------------------


def deflate_bomb(prefix: bytes = b"", size: int = GIB) -> bytes:
    """zlib data inflating to ``prefix`` then ``size`` zero bytes, built in milliseconds.

    After a full flush the compressor starts afresh, so every further MiB of zeros compresses
    to the same block: the block is repeated instead of compressing a GiB. An empty final
    block and the Adler-32 of the whole (zeros leave its first sum unchanged and add it to the
    second once per byte) close a stream zlib inflates without complaint.
    """
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9)
    head = compressor.compress(prefix) + compressor.compress(zeros)
    head += compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = size // MIB
    adler = zlib.adler32(prefix)
    low, high = adler & 0xFFFF, adler >> 16
    high = (high + low * count * MIB) % 65521
    return head + block * (count - 1) + b"\x03\x00" + ((high << 16) | low).to_bytes(4, "big")


def bomb_stream(**entries: generic.PdfObject) -> generic.StreamObject:
    dictionary = {pdf_name("/Filter"): pdf_name("/FlateDecode")}
    dictionary.update({pdf_name(f"/{k}"): v for k, v in entries.items()})
    return generic.StreamObject(dictionary, encoded_data=deflate_bomb())


class Raw(generic.PdfObject):
    """Bytes written as they are: PDF syntax that is the attack itself."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def write_to_stream(
        self, stream: BinaryIO, handler: object = None, container_ref: object = None
    ) -> None:
        stream.write(self.data)


def incremental(data: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    """Append one revision made by ``change(writer)``."""
    writer = IncrementalPdfFileWriter(BytesIO(data))
    change(writer)
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def page_ref(writer_or_reader) -> generic.IndirectObject:  # type: ignore[no-untyped-def]
    # raw_get: indexing a pyHanko array dereferences, and the reference itself is needed.
    return writer_or_reader.root["/Pages"].raw_get("/Kids").raw_get(0)


def xref_stream_revision(
    data: bytes,
    objects: dict[int, bytes],
    root: int,
    in_object_streams: dict[int, int] | None = None,
    index: bytes | None = None,
) -> bytes:
    """Append a revision whose cross-reference section is a stream (PDF 1.5), by hand.

    ``objects`` maps object numbers to their bodies; ``in_object_streams`` maps numbers of
    objects kept in an object stream to that stream's number (each at index 0). ``index``
    replaces the /Index array the section would declare.
    """
    out = bytearray(data if data.endswith(b"\n") else data + b"\n")
    previous = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    rows: dict[int, bytes] = {}
    for number, body in objects.items():
        rows[number] = b"\x01" + len(out).to_bytes(4, "big") + b"\x00\x00"
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    for number, stream_number in (in_object_streams or {}).items():
        rows[number] = b"\x02" + stream_number.to_bytes(4, "big") + b"\x00\x00"
    xref = max(rows) + 1
    rows[xref] = b"\x01" + len(out).to_bytes(4, "big") + b"\x00\x00"
    table = b"".join(rows[n] for n in sorted(rows))
    declared = index or b" ".join(b"%d 1" % n for n in sorted(rows))
    out += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Index [%s] /Root %d 0 R /Prev %d "
        b"/Length %d >>\nstream\n" % (xref, xref + 1, declared, root, previous, len(table))
    )
    out += table + b"\nendstream\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % int.from_bytes(rows[xref][1:5], "big")
    return bytes(out)


# --- The intact document, for comparison ---------------------------------------------------


@pytest.fixture(scope="module")
def env(server: Server) -> KysoEnv:
    return server.env


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bombs")


@pytest.fixture(scope="module")
def signed(env: KysoEnv, folder: Path) -> bytes:
    """B-LT: with the revocation answers in its DSS, it verifies offline as TOTAL_PASSED."""
    output = folder / "signed.pdf"
    sign_with(env, sample(folder), output, "person-nguyen-van-an", Level.B_LT)
    return output.read_bytes()


@pytest.fixture(scope="module")
def baseline(env: KysoEnv, folder: Path, signed: bytes) -> Run:
    path = folder / "intact.pdf"
    path.write_bytes(signed)
    run = kyso_verify(env, path, "--offline")
    assert run.returncode == 0 and "TOTAL_PASSED" in run.output, run.output
    return run


def test_the_bomb_is_a_sound_deflate_stream_of_the_size_it_claims() -> None:
    small = deflate_bomb(b"%PDF", size=8 * MIB)
    assert zlib.decompress(small) == b"%PDF" + bytes(8 * MIB)  # Adler-32 checked too
    bomb = deflate_bomb()
    assert len(bomb) < 1.1 * MIB  # 1 GiB of zeros in a little over 1 MiB
    inflater = zlib.decompressobj()
    assert len(inflater.decompress(bomb, 64 * MIB)) == 64 * MIB and not inflater.eof


# --- The PDF attacks -----------------------------------------------------------------------


def _bomb_page_content(writer: IncrementalPdfFileWriter) -> None:
    page = page_ref(writer).get_object()
    page["/Contents"] = writer.add_object(bomb_stream())
    writer.update_container(page)


def bomb_in_a_later_page_content(signed: bytes) -> bytes:
    return incremental(signed, _bomb_page_content)


def bomb_in_later_xmp_metadata(signed: bytes) -> bytes:
    """XMP metadata is the one page-level stream pyHanko's diff analysis inflates."""

    def change(writer: IncrementalPdfFileWriter) -> None:
        writer._update_meta = lambda: None  # type: ignore[method-assign] # keep our /Metadata
        metadata = bomb_stream(Type=pdf_name("/Metadata"), Subtype=pdf_name("/XML"))
        writer.root["/Metadata"] = writer.add_object(metadata)
        writer.update_root()

    return incremental(signed, change)


def bomb_in_a_later_dss_answer(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        dss = writer.root["/DSS"]
        dss["/OCSPs"].append(writer.add_object(bomb_stream()))
        writer.update_container(dss)

    return incremental(signed, change)


def bomb_as_a_later_object_stream(signed: bytes) -> bytes:
    """The page moves into an object stream that inflates to 1 GiB: reading it needs it."""
    reader = PdfFileReader(BytesIO(signed))
    page = page_ref(reader)
    body = BytesIO()
    page.get_object().write_to_stream(body)
    header = b"%d 0 " % page.idnum
    bomb = deflate_bomb(header + body.getvalue() + b" ")
    number = int(reader.trailer["/Size"])
    stream = (
        b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
        % (len(header), len(bomb))
        + bomb
        + b"\nendstream"
    )
    root = reader.trailer.raw_get("/Root").idnum
    return xref_stream_revision(signed, {number: stream}, root, {page.idnum: number})


def deep_array_in_the_catalog(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        writer.root["/KysoDeep"] = Raw(b"[" * NESTING + b"]" * NESTING)
        writer.update_root()

    return incremental(signed, change)


def deep_dictionary_in_a_page(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        page = page_ref(writer).get_object()
        page["/KysoDeep"] = Raw(b"<</A " * NESTING + b">>" * NESTING)
        writer.update_container(page)

    return incremental(signed, change)


def object_that_is_a_reference_to_itself(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        ref = writer.add_object(generic.NullObject())
        writer.objects[(ref.generation, ref.idnum)] = ref  # "n 0 obj n 0 R endobj"
        writer.root["/KysoSelf"] = ref
        writer.update_root()

    return incremental(signed, change)


def page_tree_loop(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        pages = writer.root.raw_get("/Pages")
        node = pages.get_object()
        node["/Kids"].append(pages)  # the /Pages node is its own child
        writer.update_container(node)

    return incremental(signed, change)


def page_that_is_its_own_parent(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        ref = page_ref(writer)
        page = ref.get_object()
        page["/Parent"] = ref
        page["/Kids"] = generic.ArrayObject([ref])
        writer.update_container(page)

    return incremental(signed, change)


def form_field_that_is_its_own_kid(signed: bytes) -> bytes:
    def change(writer: IncrementalPdfFileWriter) -> None:
        form = writer.root["/AcroForm"]
        field = writer.add_object(
            generic.DictionaryObject({pdf_name("/T"): generic.TextStringObject("vong-lap")})
        )
        field.get_object()["/Kids"] = generic.ArrayObject([field])
        form["/Fields"].append(field)
        writer.update_container(form)

    return incremental(signed, change)


def xref_stream_declaring_a_trillion_objects(signed: bytes) -> bytes:
    """pyHanko, reading leniently, made up an entry per missing row: it never finished."""
    reader = PdfFileReader(BytesIO(signed))
    number = int(reader.trailer["/Size"])
    root = reader.trailer.raw_get("/Root").idnum
    index = b"%d %d" % (number, 2**40 - 1)
    return xref_stream_revision(signed, {number: b"null"}, root, index=index)


def trailer_size_of_2_to_the_63(signed: bytes) -> bytes:
    at = signed.rfind(b"/Size")
    size = re.compile(rb"/Size\s+\d+").match(signed, at)
    assert size
    return signed[:at] + b"/Size 9223372036854775807" + signed[size.end() :]


@dataclass(frozen=True)
class Attack:
    build: Callable[[bytes], bytes]
    exit_code: int  # 1: reported as not valid, 2: refused as unusable input
    says: str  # in the output


ATTACKS = {
    "bomb-later-page-content": Attack(bomb_in_a_later_page_content, 1, "FORMAT_FAILURE"),
    "bomb-later-xmp-metadata": Attack(bomb_in_later_xmp_metadata, 1, "FORMAT_FAILURE"),
    "bomb-later-dss-answer": Attack(bomb_in_a_later_dss_answer, 1, "inflates beyond the limit"),
    "bomb-later-object-stream": Attack(bomb_as_a_later_object_stream, 1, "FORMAT_FAILURE"),
    "deep-array-catalog": Attack(deep_array_in_the_catalog, 2, "nested too deeply"),
    "deep-dictionary-page": Attack(deep_dictionary_in_a_page, 1, "FORMAT_FAILURE"),
    "self-reference": Attack(object_that_is_a_reference_to_itself, 1, "FORMAT_FAILURE"),
    "page-tree-loop": Attack(page_tree_loop, 1, "FORMAT_FAILURE"),
    "page-own-parent": Attack(page_that_is_its_own_parent, 1, "FORMAT_FAILURE"),
    "form-field-loop": Attack(form_field_that_is_its_own_kid, 2, "Circular reference"),
    "xref-stream-huge-index": Attack(xref_stream_declaring_a_trillion_objects, 2, "too many"),
    "trailer-huge-size": Attack(trailer_size_of_2_to_the_63, 2, "/Size 9223372036854775807"),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_pdf_attack_is_refused_within_bounds(
    env: KysoEnv, folder: Path, signed: bytes, baseline: Run, name: str
) -> None:
    attack = ATTACKS[name]
    path = folder / f"{name}.pdf"
    path.write_bytes(attack.build(signed))
    run = kyso_verify(env, path, "--offline")
    run.check(name, baseline.peak)
    assert run.returncode == attack.exit_code, run.output
    assert attack.says in run.output, run.output
    assert "TOTAL_PASSED" not in run.output


def test_bomb_inside_the_signed_content_is_never_inflated(
    env: KysoEnv, folder: Path, baseline: Run
) -> None:
    source = folder / "bomb-source.pdf"
    source.write_bytes(incremental(sample(folder, "plain.pdf").read_bytes(), _bomb_page_content))
    signed = folder / "signed-bomb.pdf"
    sign_with(env, source, signed, "person-nguyen-van-an", Level.B_LT)
    run = kyso_verify(env, signed, "--offline")
    run.check("bomb-signed-content", baseline.peak)
    # Integrity is a hash over bytes, revisions are compared on encoded streams: 1 GiB of
    # page content costs no more than any other page. The signature is genuine.
    assert run.peak - baseline.peak < 64 * MIB
    assert run.returncode == 0 and "TOTAL_PASSED" in run.output, run.output


# --- XML bombs -----------------------------------------------------------------------------


def billion_laughs() -> bytes:
    entities = b'<!ENTITY lol0 "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1)) * 10) for i in range(1, 10)
    )
    return b'<?xml version="1.0"?><!DOCTYPE lolz [' + entities + b"]><lolz>&lol9;</lolz>"


def quadratic_blowup() -> bytes:
    """One 100 KB entity referenced 100 000 times: 10 GB of text without any nesting."""
    entity = b"x" * 100_000
    return (
        b'<?xml version="1.0"?><!DOCTYPE kaboom [<!ENTITY a "'
        + entity
        + b'">]><kaboom>'
        + b"&a;" * 100_000
        + b"</kaboom>"
    )


def deeply_nested_xml() -> bytes:
    return b"<a>" * NESTING + b"</a>" * NESTING


XML_BOMBS = {
    "billion-laughs": (billion_laughs, "document type declarations"),
    "quadratic-blowup": (quadratic_blowup, "document type declarations"),
    "nested-100000": (deeply_nested_xml, "nested deeper than 64"),
}


@pytest.mark.parametrize("name", XML_BOMBS)
def test_xml_bomb_is_refused_within_bounds(
    env: KysoEnv, folder: Path, baseline: Run, name: str
) -> None:
    build, reason = XML_BOMBS[name]
    data = build()
    # refused by a scan, before any expansion: well under a second of CPU time
    with pytest.raises(HostileXml, match=reason), bounded(name, cpu_limit=1.0):
        safexml.parse(data)
    path = folder / f"{name}.xml"
    path.write_bytes(data)
    run = kyso_verify(env, path, "--offline")
    run.check(name, baseline.peak)
    assert run.returncode == 2 and reason in run.output, run.output
