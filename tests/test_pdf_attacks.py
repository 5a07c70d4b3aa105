"""Attacks from "PDF insecurity" research, each built by the test: none may pass.

Every attack starts from a document Kyso signed, then changes it the way an attacker would,
with pyHanko's incremental writer (no hand-written PDF syntax except where the attack is the
syntax itself: /ByteRange and /Contents).
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import cms, parser
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from certs.truststore import load_certificates
from signer.checkcache import CertificateCheckCache
from signer.pdf_verify import verify_pdf
from signer.policy import ValidationPolicy
from signer.report import Indication, SignatureReport, SubIndication

from .bounds import kyso_verify
from .conftest import KysoEnv, Server
from .pdftools import sample, sign_with, stranger_key, verify_with

FORGED_TEXT = b"BT /F1 24 Tf 72 500 Td (FORGED: tra lai 10 ty dong) Tj ET"


@pytest.fixture
def env(server: Server) -> KysoEnv:
    return server.env


@pytest.fixture
def signed(env: KysoEnv, tmp_path: Path) -> Path:
    output = tmp_path / "signed.pdf"
    sign_with(env, sample(tmp_path), output, "person-nguyen-van-an")
    return output


def incremental(path: Path, change) -> bytes:  # type: ignore[no-untyped-def]
    """Append one revision made by ``change(writer)`` to the file at ``path``."""
    writer = IncrementalPdfFileWriter(BytesIO(path.read_bytes()))
    change(writer)
    buffer = BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def first_page(
    writer: IncrementalPdfFileWriter,
) -> tuple[generic.IndirectObject, generic.DictionaryObject]:
    ref = writer.root["/Pages"].raw_get("/Kids")[0]
    return ref, ref.get_object()


_KEEPING: dict[Path, ValidationPolicy] = {}


def keeping_the_signers_verdict(env: KysoEnv, tmp_path: Path) -> ValidationPolicy:
    """A policy that already keeps a passing verdict on the demo signer's certificate, as
    the relay's does after the first genuine document (the signer's path is then not
    validated again: integrity must still be checked in full)."""
    if env.pki not in _KEEPING:
        policy = ValidationPolicy(
            tuple(load_certificates(env.root)), checks=CertificateCheckCache()
        )
        genuine = tmp_path / "genuine.pdf"
        sign_with(env, sample(tmp_path, "genuine-source.pdf"), genuine, "person-nguyen-van-an")
        assert verify_pdf(genuine, policy).passed
        _KEEPING[env.pki] = policy
    return _KEEPING[env.pki]


def assert_not_passed(env: KysoEnv, data: bytes, tmp_path: Path, name: str) -> SignatureReport:
    """The attack file's first signature report, which must not pass (library and CLI, and
    with the signer's verdict kept from a genuine document)."""
    path = tmp_path / name
    path.write_bytes(data)
    report = verify_with(env, path)
    assert report.signatures, "the attack file must still contain the signature"
    assert not report.passed
    first = report.signatures[0]
    assert first.indication is not Indication.TOTAL_PASSED, first
    kept = verify_pdf(path, keeping_the_signers_verdict(env, tmp_path)).signatures[0]
    assert (kept.indication, kept.sub_indication) == (first.indication, first.sub_indication)
    run = kyso_verify(env, path)  # also under the time and memory bounds of every attack
    run.check(name)
    assert run.returncode == 1, run.output
    return first


def test_incremental_saving_attack_replaces_page_content(env, signed, tmp_path) -> None:
    def change(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=FORGED_TEXT))
        writer.update_container(page)

    assert_not_passed(env, incremental(signed, change), tmp_path, "isa.pdf")
    report = verify_with(env, tmp_path / "isa.pdf")
    change = report.signatures[0].changes[0]
    assert not change.allowed


def test_shadow_hide_removes_an_overlay_after_signing(env, tmp_path) -> None:
    # Prepared document: real content with an opaque overlay on top; the signer sees only the
    # overlay. After signing, the attacker drops the overlay from /Contents.
    prepared = tmp_path / "prepared.pdf"

    def add_overlay(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        cover = writer.add_object(generic.StreamObject(stream_data=b"1 1 1 rg 0 0 595 842 re f"))
        original = page.raw_get("/Contents")
        page["/Contents"] = generic.ArrayObject([original, cover])
        writer.update_container(page)

    prepared.write_bytes(incremental(sample(tmp_path), add_overlay))
    signed = tmp_path / "signed.pdf"
    sign_with(env, prepared, signed, "person-nguyen-van-an")

    def remove_overlay(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        page["/Contents"] = generic.ArrayObject([page["/Contents"].raw_get(0)])
        writer.update_container(page)

    assert_not_passed(env, incremental(signed, remove_overlay), tmp_path, "shadow-hide.pdf")


def test_shadow_replace_swaps_a_font(env, signed, tmp_path) -> None:
    def swap_font(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        fonts = page["/Resources"]["/Font"]
        name = next(iter(fonts.keys()))
        fonts[name] = writer.add_object(
            generic.DictionaryObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/Font"),
                    generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
                    generic.NameObject("/BaseFont"): generic.NameObject("/Courier"),
                }
            )
        )
        writer.update_container(page["/Resources"]["/Font"])
        writer.update_container(page)

    assert_not_passed(env, incremental(signed, swap_font), tmp_path, "shadow-font.pdf")


def test_shadow_replace_redefines_a_signed_object(env, signed, tmp_path) -> None:
    # Overwrite the page's content stream object itself (same object number, new revision).
    def redefine(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        contents = page.raw_get("/Contents")
        ref = contents if isinstance(contents, generic.IndirectObject) else contents[0]
        writer.mark_update(ref)
        writer.objects[(ref.generation, ref.idnum)] = generic.StreamObject(stream_data=FORGED_TEXT)

    assert_not_passed(env, incremental(signed, redefine), tmp_path, "shadow-xobject.pdf")


def test_hide_and_replace_with_an_overlay_annotation(env, signed, tmp_path) -> None:
    def overlay(writer: IncrementalPdfFileWriter) -> None:
        _, page = first_page(writer)
        appearance = writer.add_object(
            generic.StreamObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/XObject"),
                    generic.NameObject("/Subtype"): generic.NameObject("/Form"),
                    generic.NameObject("/BBox"): generic.ArrayObject(
                        [generic.NumberObject(v) for v in (0, 0, 595, 842)]
                    ),
                },
                stream_data=b"1 1 1 rg 0 0 595 842 re f " + FORGED_TEXT,
            )
        )
        annotation = writer.add_object(
            generic.DictionaryObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/Annot"),
                    generic.NameObject("/Subtype"): generic.NameObject("/Square"),
                    generic.NameObject("/Rect"): generic.ArrayObject(
                        [generic.NumberObject(v) for v in (0, 0, 595, 842)]
                    ),
                    generic.NameObject("/AP"): generic.DictionaryObject(
                        {generic.NameObject("/N"): appearance}
                    ),
                }
            )
        )
        annots = page.get("/Annots", generic.ArrayObject())
        annots.append(annotation)
        page["/Annots"] = annots
        writer.update_container(page)

    assert_not_passed(env, incremental(signed, overlay), tmp_path, "overlay-annot.pdf")


def _byte_range(data: bytes) -> tuple[re.Match[bytes], list[int]]:
    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data)
    assert match
    return match, [int(v) for v in match.groups()]


def _replace_byte_range(data: bytes, values: list[int]) -> bytes:
    match, _ = _byte_range(data)
    old = match.group(0)
    new = b"/ByteRange [" + b" ".join(str(v).encode() for v in values) + b"]"
    assert len(new) <= len(old)
    return data[: match.start()] + new.ljust(len(old)) + data[match.end() :]


def test_byte_range_that_leaves_more_than_contents_uncovered(env, signed, tmp_path) -> None:
    data = signed.read_bytes()
    _, (a, b, c, d) = _byte_range(data)
    # The gap starts 40 bytes early: part of the signature dictionary is unsigned.
    forged = _replace_byte_range(data, [a, b - 40, c, d])
    assert_not_passed(env, forged, tmp_path, "gap.pdf")


def test_byte_range_not_reaching_the_end_with_appended_content(env, signed, tmp_path) -> None:
    data = signed.read_bytes()
    appended = data + b"\n% attacker data\n1 0 obj (x) endobj\n"
    assert_not_passed(env, appended, tmp_path, "appended.pdf")


@pytest.mark.parametrize("contents", [b"<>", b"<00>", b"<" + b"41" * 200 + b">"])
def test_universal_signature_forgery_with_empty_or_garbage_contents(
    env, signed, tmp_path, contents
) -> None:
    data = signed.read_bytes()
    match = re.search(rb"/Contents\s*<([0-9A-Fa-f]+)>", data)
    assert match
    original = match.group(0)
    replacement = b"/Contents " + contents
    forged = data.replace(original, replacement.ljust(len(original)), 1)
    assert_not_passed(env, forged, tmp_path, "usf.pdf")


def test_second_signature_claiming_another_signer(env, signed, tmp_path) -> None:
    # An attacker's self-made certificate with the officer's name signs a second revision.
    from signer.pdf import PdfSignOptions, sign

    attacker = stranger_key("Nguyễn Văn An", "UBND tỉnh Nghệ An")
    forged = tmp_path / "second.pdf"
    sign(signed, forged, attacker, PdfSignOptions())
    report = verify_with(env, forged)
    first, second = report.signatures
    assert first.indication is Indication.TOTAL_PASSED  # the genuine one is still fine
    assert (second.indication, second.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    ), second
    assert second.signer.common_name == "Nguyễn Văn An"
    assert not report.passed


def _contents_gap(data: bytes) -> tuple[int, int, bytes]:
    """The /Contents gap's offsets (from ``<`` to after ``>``) and the CMS it holds, unpadded."""
    _, (_a, start, end, _d) = _byte_range(data)
    gap = data[start:end]
    assert gap.startswith(b"<") and gap.endswith(b">")
    _, _, _, header, contents, _ = parser.parse(bytes.fromhex(gap[1:-1].decode()), strict=False)
    return start, end, (header + contents).hex().encode()  # without the zero padding


def test_signature_wrapping_hides_data_in_the_contents_gap(env, signed, tmp_path) -> None:
    # Signature wrapping ("PDF insecurity"): every signed byte stays where it was and the CMS
    # stays valid; the attacker's bytes go into the unsigned gap after the real /Contents.
    data = signed.read_bytes()
    start, end, der_hex = _contents_gap(data)
    hidden = b"<" + der_hex + b">%" + FORGED_TEXT + b"\n"
    assert len(hidden) < end - start
    forged = data[:start] + hidden.ljust(end - start) + data[end:]
    first = assert_not_passed(env, forged, tmp_path, "wrapped.pdf")
    assert (first.indication, first.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.FORMAT_FAILURE,
    ), first


def test_one_changed_signed_byte_is_hash_failure(env, signed, tmp_path) -> None:
    data = bytearray(signed.read_bytes())
    _, (_a, gap_start, _c, _d) = _byte_range(bytes(data))
    match = re.search(rb"\(([^()\\]{8,})\)", bytes(data[:gap_start]))  # a signed string
    assert match
    data[match.start(1)] ^= 0x01
    first = assert_not_passed(env, bytes(data), tmp_path, "hash.pdf")
    assert (first.indication, first.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    ), first


def test_changed_signature_value_is_sig_crypto_failure(env, signed, tmp_path) -> None:
    # The signed attributes (and so the document digest) stay intact; only the RSA value differs.
    data = signed.read_bytes()
    start, end, der_hex = _contents_gap(data)
    der = bytes.fromhex(der_hex.decode())
    value = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signature"].native
    at = der.index(value) + len(value) // 2
    new_hex = (der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]).hex().encode()
    forged = data[:start] + (b"<" + new_hex).ljust(end - start - 1, b"0") + b">" + data[end:]
    first = assert_not_passed(env, forged, tmp_path, "sig.pdf")
    assert (first.indication, first.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.SIG_CRYPTO_FAILURE,
    ), first
