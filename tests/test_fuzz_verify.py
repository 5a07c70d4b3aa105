"""Fuzzing verification with mutated Kyso-signed PDFs, XAdES XML and CAdES signatures.

The contract: :func:`signer.verify.verify`, ``verify_pdf``, ``verify_xml`` and ``verify_cms``
return a :class:`Report` (any verdict) or raise a :class:`SignerError` -- anything else
(KeyError, AttributeError, RecursionError, ...) is a bug -- and a mutated document verifies
TOTAL_PASSED only if the bytes its signature covers are intact (the mutation hit only the
unsigned /Contents padding, a later revision the signature allows, whitespace that C14N
drops, an unsigned property...).

Below the fuzz tests, one regression test for each bug the fuzzing found, with an input
built from a real signature the way the fuzzer first broke it.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms, core
from hypothesis import event, given
from hypothesis import strategies as st
from lxml import etree
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.timestamps import HTTPTimeStamper

from certs.truststore import load_certificates
from signer import cades, edxml, xades, xml_signing
from signer.errors import InvalidDocument, SignerError
from signer.levels import Level
from signer.pdf_verify import verify_pdf
from signer.policy import ValidationPolicy
from signer.report import Indication, Report, SubIndication
from signer.revcache import RevocationCache
from signer.verify import verify
from signer.xades import XmlVerification
from signer.xml_signing import verify_document

from .conftest import Server
from .fuzztools import DER_TOKENS, PDF_TOKENS, XML_TOKENS, fuzz_settings, mutations
from .pdftools import sample, sign_with
from .test_xml_signing import SEAL, demo_key, sample_package

# System tests (the live server stamps the XML and CMS samples and answers OCSP while they are
# checked), and slow: only `make test` runs them.
pytestmark = [pytest.mark.system, pytest.mark.slow]

ATTACHMENT = "Phụ lục I: Danh mục dự án chuyển đổi số năm 2027\n".encode() * 20
PLAIN_XML = (
    '<CongVan xmlns="urn:kyso:test"><So>15/QĐ-UBND</So>'
    '<TrichYeu Id="trich-yeu">Về việc phê duyệt kế hoạch chuyển đổi số năm 2027</TrichYeu>'
    "<SoTien>1000000</SoTien></CongVan>"
).encode()


@dataclass(frozen=True)
class Samples:
    """Documents Kyso signed, each verifying TOTAL_PASSED under its policy."""

    pdf_lta: bytes  # B-LTA: signature, DSS, document timestamp; classic xref tables
    pdf_objstm: bytes  # B-LT over a source with object and cross-reference streams
    xml: bytes  # XAdES B-T over a plain document
    package: bytes  # XAdES B-B over an edXML package (schema-checked first)
    cms: bytes  # detached CAdES B-T over ATTACHMENT
    offline: ValidationPolicy  # PDFs carry their revocation answers (B-LT, B-LTA)
    online: ValidationPolicy  # XML and CMS: the answers are fetched once, then cached


@pytest.fixture(scope="module")
def samples(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Samples:
    env = server.env
    folder = tmp_path_factory.mktemp("fuzz")
    lta = folder / "lta.pdf"
    sign_with(env, sample(folder), lta, "person-nguyen-van-an", Level.B_LTA)
    streams = folder / "objstm-source.pdf"
    subprocess.run(
        ["qpdf", "--object-streams=generate", str(sample(folder, "plain.pdf")), str(streams)],
        check=True,
    )
    objstm = folder / "objstm.pdf"
    sign_with(env, streams, objstm, "seal-000.00.00.H41", Level.B_LT)
    timestamper = HTTPTimeStamper(f"{env.url}/pki/tsa")
    with demo_key(env, SEAL) as key:
        xml = xml_signing.sign_xml(PLAIN_XML, key, level=Level.B_T, timestamper=timestamper)
        package = xml_signing.sign_xml(edxml.build_package(sample_package()), key)
        signature = cades.sign_cms(ATTACHMENT, key, level=Level.B_T, timestamper=timestamper)
    roots = tuple(load_certificates(env.root))
    found = Samples(
        lta.read_bytes(),
        objstm.read_bytes(),
        xml,
        package,
        signature,
        ValidationPolicy(roots, offline=True),
        ValidationPolicy(roots, cache=RevocationCache()),
    )
    for data in (found.pdf_lta, found.pdf_objstm):
        assert verify_pdf(io.BytesIO(data), found.offline).passed
    for data in (found.xml, found.package):
        assert xml_signing.verify_xml(data, found.online).passed
    assert cades.verify_cms(found.cms, ATTACHMENT, found.online).passed
    return found


# --- The oracles ---------------------------------------------------------------------------


def signed_ranges(pdf: bytes) -> dict[str, tuple[int, int, int, int]]:
    """Each signature field's /ByteRange in the original file."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    ranges = {}
    for name, _, field in enumerate_sig_fields(reader, filled_status=True):
        a, b, c, d = (int(v) for v in field.get_object()["/V"]["/ByteRange"])
        ranges[name] = (a, b, c, d)
    return ranges


def check_pdf(original: bytes, mutated: bytes, outcome: Report | SignerError) -> None:
    if isinstance(outcome, SignerError):
        return
    ranges = signed_ranges(original)
    for signature in outcome.signatures:
        if signature.passed:
            a, b, c, d = ranges[signature.identifier]
            assert mutated[a : a + b] == original[a : a + b], "passed with changed signed bytes"
            assert mutated[c : c + d] == original[c : c + d], "passed with changed signed bytes"


def check_xml(original: XmlVerification, outcome: XmlVerification | SignerError) -> None:
    if isinstance(outcome, SignerError):
        return
    if outcome.report.passed:
        # What the signature covers, canonicalized: the document minus its signature.
        assert outcome.signed_content == original.signed_content
        # The signed tree says exactly that, and holds nothing else.
        c14n = etree.tostring(
            outcome.signed_tree, method="c14n", exclusive=True, with_comments=False
        )
        assert c14n == original.signed_content


def signed_part(signature: bytes) -> tuple[bytes, bytes]:
    signer = cades.load_signed_data(signature)["signer_infos"][0]
    return signer["signed_attrs"].dump(), signer["signature"].dump()


def check_cms(original: bytes, mutated: bytes, content: bytes, outcome: Report | SignerError):
    if isinstance(outcome, SignerError):
        return
    if outcome.passed:
        assert content == ATTACHMENT
        assert signed_part(mutated) == signed_part(original)


def outcome_of(function, *args):  # type: ignore[no-untyped-def]
    """The report (or XML verification), or the input error; any other exception propagates
    (a bug)."""
    try:
        outcome = function(*args)
    except SignerError as exc:
        event(type(exc).__name__)
        return exc
    report = outcome.report if isinstance(outcome, XmlVerification) else outcome
    assert isinstance(report, Report)
    event("passed" if report.passed else "not passed")
    assert report.to_dict()["version"] == 1  # the report serializes (what the API returns)
    return outcome


# --- Fuzzing -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where mutated files are written: files, not BytesIO, are what the CLI and API verify
    (they fail differently, e.g. a seek before offset 0 is an OSError only for a file)."""
    return tmp_path_factory.mktemp("mutated")


def verify_pdf_file(scratch: Path, data: bytes, policy: ValidationPolicy) -> Report | SignerError:
    path = scratch / "fuzz.pdf"
    path.write_bytes(data)
    return outcome_of(verify_pdf, path, policy)


@given(data=st.data())
@fuzz_settings(400)
def test_fuzz_verify_pdf_lta(samples: Samples, scratch: Path, data: st.DataObject) -> None:
    mutated = data.draw(mutations(samples.pdf_lta, PDF_TOKENS))
    check_pdf(samples.pdf_lta, mutated, verify_pdf_file(scratch, mutated, samples.offline))


@given(data=st.data())
@fuzz_settings(400)
def test_fuzz_verify_pdf_object_streams(samples: Samples, scratch: Path, data: st.DataObject):
    mutated = data.draw(mutations(samples.pdf_objstm, PDF_TOKENS))
    check_pdf(samples.pdf_objstm, mutated, verify_pdf_file(scratch, mutated, samples.offline))


@pytest.fixture(scope="module")
def xml_baseline(samples: Samples) -> XmlVerification:
    return xml_signing.verify_document(samples.xml, samples.online)


@given(data=st.data())
@fuzz_settings(500)
def test_fuzz_verify_xml_bytes(
    samples: Samples, xml_baseline: XmlVerification, data: st.DataObject
):
    mutated = data.draw(mutations(samples.xml, XML_TOKENS))
    check_xml(xml_baseline, outcome_of(verify_document, mutated, samples.online, "fuzz.xml"))


XML_VALUES = (
    "", "#", "x", "0", "-1", "99999999999999999999", "AAAA", "====", "2026-13-45T99:99:99",
    xades.EXC_C14N, xades.C14N_10, xades.ENVELOPED, xades.SHA256_URI, xades.ECDSA_SHA256_URI,
    "http://www.w3.org/2000/09/xmldsig#sha1", xades.SIGNED_PROPERTIES_TYPE,
)  # fmt: skip
XML_ATTRIBUTES = ("Id", "URI", "Algorithm", "Type", "Target", "PrefixList")


@st.composite
def tree_mutations(draw, original: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """Edits an attacker makes with an XML library: texts, attributes, moved, copied,
    removed and renamed elements, comments (bytes stay well-formed)."""
    tree = etree.fromstring(original).getroottree()
    for _ in range(draw(st.integers(1, 3))):
        elements = [e for e in tree.iter() if isinstance(e.tag, str)]
        element = draw(st.sampled_from(elements))
        parent = element.getparent()
        operation = draw(st.integers(0, 6))
        if operation == 0:
            element.text = draw(st.sampled_from(XML_VALUES))
        elif operation == 1:
            element.set(draw(st.sampled_from(XML_ATTRIBUTES)), draw(st.sampled_from(XML_VALUES)))
        elif operation == 2 and parent is not None:
            parent.remove(element)
        elif operation == 3 and parent is not None:
            element.addnext(etree.fromstring(etree.tostring(element)))
        elif operation == 4 and parent is not None:
            draw(st.sampled_from(elements)).append(element)  # moves it (or refuses a cycle)
        elif operation == 5:
            element.append(etree.Comment("x"))
        else:
            element.tag = draw(st.sampled_from(elements)).tag
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


@given(data=st.data())
@fuzz_settings(400)
def test_fuzz_verify_xml_tree(samples: Samples, xml_baseline: XmlVerification, data: st.DataObject):
    try:
        mutated = data.draw(tree_mutations(samples.xml))
    except ValueError:  # lxml refused the edit (an element into its own subtree)
        return
    check_xml(xml_baseline, outcome_of(verify_document, mutated, samples.online, "fuzz.xml"))


@given(data=st.data())
@fuzz_settings(150)
def test_fuzz_verify_edxml_package(samples: Samples, data: st.DataObject) -> None:
    baseline = xml_signing.verify_document(samples.package, samples.online)
    try:
        mutated = data.draw(tree_mutations(samples.package))
    except ValueError:
        return
    check_xml(baseline, outcome_of(verify_document, mutated, samples.online, "package.xml"))


@given(data=st.data())
@fuzz_settings(250)
def test_fuzz_verify_cms(samples: Samples, data: st.DataObject) -> None:
    mutated = data.draw(mutations(samples.cms, DER_TOKENS))
    content = ATTACHMENT
    if data.draw(st.integers(0, 9)) == 0:  # sometimes the signed file changes instead
        content = data.draw(mutations(ATTACHMENT, (b"\n", b"I")))
        mutated = samples.cms
    outcome = outcome_of(cades.verify_cms, mutated, content, samples.online, "phu-luc.txt")
    check_cms(samples.cms, mutated, content, outcome)


@given(data=st.data())
@fuzz_settings(150)
def test_fuzz_the_one_entry_point(samples: Samples, scratch: Path, data: st.DataObject) -> None:
    """signer.verify.verify: format detection on mutated heads, then the right verifier."""
    kind = data.draw(st.sampled_from(["pdf", "xml", "cms"]))
    original, tokens = {
        "pdf": (samples.pdf_lta, PDF_TOKENS),
        "xml": (samples.xml, XML_TOKENS),
        "cms": (samples.cms, DER_TOKENS),
    }[kind]
    mutated = data.draw(mutations(original, tokens))
    document, content = scratch / f"document.{kind}", scratch / "phu-luc.txt"
    document.write_bytes(mutated)
    content.write_bytes(ATTACHMENT)
    policy = samples.offline if kind == "pdf" else samples.online
    outcome = outcome_of(verify, document, policy, content)
    if kind == "pdf":
        check_pdf(original, mutated, outcome)
    elif kind == "cms":
        check_cms(original, mutated, ATTACHMENT, outcome)
    elif isinstance(outcome, Report) and outcome.passed:
        assert outcome.format == "XML"
        signed = xml_signing.verify_document(mutated, policy).signed_content
        assert signed == xml_signing.verify_document(original, policy).signed_content


# --- Regressions: inputs that crashed verification before ----------------------------------


def incremental(data: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    change(writer)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def replace_at(data: bytes, at: int, old: bytes, new: bytes) -> bytes:
    assert data[at : at + len(old)] == old
    return data[:at] + new + data[at + len(old) :]


def verify_offline(samples: Samples, data: bytes) -> Report:
    return verify_pdf(io.BytesIO(data), samples.offline, "regression.pdf")


def test_cross_reference_stream_that_is_not_one_is_invalid(samples: Samples) -> None:
    # pyHanko asserted the /Type of the stream startxref points at (AssertionError).
    at = samples.pdf_objstm.rfind(b"/Type /XRef")
    broken = replace_at(samples.pdf_objstm, at, b"/Type /XRef", b"/Type /XReg")
    with pytest.raises(InvalidDocument, match="not a readable PDF"):
        verify_offline(samples, broken)


def test_startxref_beyond_any_file_is_invalid(samples: Samples) -> None:
    # seek() to 10**20 raised OverflowError.
    last = list(re.finditer(rb"startxref\s+(\d+)", samples.pdf_lta))[-1]
    broken = samples.pdf_lta[: last.start(1)] + b"9" * 20 + samples.pdf_lta[last.end(1) :]
    with pytest.raises(InvalidDocument, match="not a readable PDF"):
        verify_offline(samples, broken)


def test_startxref_zero_in_a_file_is_invalid(samples: Samples, tmp_path: Path) -> None:
    # pyHanko's startxref correction seeks 11 bytes back from offset 1: a file (unlike
    # BytesIO) raises OSError for that, and files are what the CLI and the API verify.
    last = list(re.finditer(rb"startxref\s+(\d+)", samples.pdf_lta))[-1]
    path = tmp_path / "startxref-0.pdf"
    path.write_bytes(samples.pdf_lta[: last.start(1)] + b"0" + samples.pdf_lta[last.end(1) :])
    with pytest.raises(InvalidDocument, match="not a readable PDF"):
        verify(path, samples.offline)


def test_signature_value_that_is_not_a_dictionary_is_a_format_failure(samples: Samples):
    # pyHanko asserted that the field's /V is a dictionary (AssertionError).
    def change(writer: IncrementalPdfFileWriter) -> None:
        field = writer.root["/AcroForm"]["/Fields"][0]
        field["/V"] = generic.NumberObject(1)
        writer.update_container(field)

    report = verify_offline(samples, incremental(samples.pdf_objstm, change))
    [signature] = report.signatures
    assert signature.sub_indication is SubIndication.FORMAT_FAILURE
    assert "cannot be parsed" in signature.details[0]


def test_dss_entry_that_is_not_a_stream_is_ignored_and_named(samples: Samples) -> None:
    # DocumentSecurityStore.read_dss called read_data() on a dictionary (AttributeError).
    def change(writer: IncrementalPdfFileWriter) -> None:
        dss = writer.root["/DSS"]
        dss["/OCSPs"] = generic.ArrayObject([writer.add_object(generic.DictionaryObject())])
        writer.update_container(dss)

    report = verify_offline(samples, incremental(samples.pdf_objstm, change))
    assert any("DSS" in p and "not a stream" in p for p in report.problems), report.problems
    assert not report.passed


def test_dss_answer_with_a_damaged_time_is_ignored_and_named(samples: Samples) -> None:
    # asn1crypto parses lazily: the bad producedAt raised ValueError deep in validation.
    def change(writer: IncrementalPdfFileWriter) -> None:
        dss = writer.root["/DSS"]
        answer = dss["/OCSPs"][0].data
        at = answer.find(b"\x18\x0f20") + 4  # GeneralizedTime "20YY..." -> "20XY..."
        broken = generic.StreamObject(stream_data=answer[:at] + b"X" + answer[at + 1 :])
        dss["/OCSPs"] = generic.ArrayObject([writer.add_object(broken)])
        writer.update_container(dss)

    report = verify_offline(samples, incremental(samples.pdf_objstm, change))
    assert any("DSS" in p and "GeneralizedTime" in p for p in report.problems), report.problems
    [signature] = report.signatures
    assert signature.indication is Indication.INDETERMINATE  # no revocation answer left


def test_stream_without_length_read_for_the_document_timestamp_is_a_verdict(samples: Samples):
    # The document timestamp's check of later revisions raised KeyError('/Length').
    at = samples.pdf_lta.find(b"/Length")  # the first stream: same size, no offset moves
    broken = replace_at(samples.pdf_lta, at, b"/Length", b"/Lengtx")
    report = verify_offline(samples, broken)
    assert report.signatures and not report.passed


def test_real_number_that_does_not_parse_is_a_verdict(samples: Samples) -> None:
    # pyHanko reads reals with Decimal: "595..275" raised decimal.InvalidOperation (an
    # ArithmeticError, not a ValueError) while the document timestamp's check read the page.
    page_in_revision_2 = samples.pdf_lta.find(b"595.2756", samples.pdf_lta.find(b"%%EOF"))
    broken = replace_at(samples.pdf_lta, page_in_revision_2, b"595.2756", b"595..275")
    report = verify_offline(samples, broken)
    assert report.signatures and not report.passed


def cms_part(signature: bytes, part: bytes, start: int = 0) -> int:
    at = signature.find(part, start)
    assert at >= 0
    return at


def test_cms_certificate_with_a_name_that_is_not_utf8_is_invalid(samples: Samples) -> None:
    # The issuing CA's name reached certvalidator unparsed: UnicodeDecodeError.
    signed_data = cms.ContentInfo.load(samples.cms)["content"]
    certificates = [c.chosen for c in signed_data["certificates"]]
    [issuing] = [c for c in certificates if "Issuing" in c.subject.native["common_name"]]
    subject = cms_part(samples.cms, issuing["tbs_certificate"]["subject"].dump())
    at = cms_part(samples.cms, "Nghệ".encode(), subject)
    broken = replace_at(samples.cms, at, b"N", b"\xff")
    with pytest.raises(InvalidDocument, match="malformed certificate"):
        cades.verify_cms(broken, ATTACHMENT, samples.online)


def test_cms_signer_identifier_that_does_not_parse_is_invalid(samples: Samples) -> None:
    # IssuerAndSerialNumber's serial tagged [0]: ValueError in extract_certs_for_validation.
    signer = cms.ContentInfo.load(samples.cms)["content"]["signer_infos"][0]
    sid = signer["sid"].chosen
    at = cms_part(samples.cms, sid.dump()) + len(sid.dump()) - len(sid.contents)
    at += len(sid["issuer"].dump())
    broken = replace_at(samples.cms, at, b"\x02", b"\x80")
    with pytest.raises(InvalidDocument, match="not a CMS signature"):
        cades.verify_cms(broken, ATTACHMENT, samples.online)


def test_cms_signed_attribute_of_the_wrong_type_is_invalid(samples: Samples) -> None:
    # The content-type attribute as a REAL: ValueError from the lazily parsed attribute.
    signer = cms.ContentInfo.load(samples.cms)["content"]["signer_infos"][0]
    attributes = cms_part(samples.cms, signer["signed_attrs"].dump())
    data_oid = bytes.fromhex("06092a864886f70d010701")
    at = cms_part(samples.cms, data_oid, attributes)
    broken = replace_at(samples.cms, at, b"\x06", b"\x09")
    with pytest.raises(InvalidDocument, match="not a CMS signature"):
        cades.verify_cms(broken, ATTACHMENT, samples.online)


def test_cms_signed_attribute_nested_thousands_deep_is_invalid(samples: Samples) -> None:
    # Parsing every signed attribute (the fixes above) must survive asn1crypto's recursion.
    nested = b"\x05\x00"
    for _ in range(5000):
        length = len(nested)
        size = bytes([length]) if length < 128 else b"\x82" + length.to_bytes(2, "big")
        nested = b"\x30" + size + nested
    info = cms.ContentInfo.load(samples.cms)
    attributes = info["content"]["signer_infos"][0]["signed_attrs"]
    attributes.append(cms.CMSAttribute({"type": "1.2.3.4.5", "values": [core.Any.load(nested)]}))
    with pytest.raises(InvalidDocument, match="nested too deeply"):
        cades.verify_cms(info.dump(), ATTACHMENT, samples.online)


def test_timestamp_token_with_an_unknown_hash_is_ignored(samples: Samples) -> None:
    # certvalidator looked the token's hash up by name: AttributeError for an unknown OID.
    signer = cms.ContentInfo.load(samples.cms)["content"]["signer_infos"][0]
    unsigned = cms_part(samples.cms, signer["unsigned_attrs"].dump())
    sha256 = bytes.fromhex("0609608648016503040201")
    last = samples.cms.rfind(sha256, unsigned)  # the token's SignerInfo digest algorithm
    broken = replace_at(samples.cms, last + 4, b"\x48", b"\x47")  # 2.16.840.x -> 2.16.839.x
    report = cades.verify_cms(broken, ATTACHMENT, samples.online)
    [signature] = report.signatures
    assert any("timestamp token is malformed" in d for d in signature.details), signature.details
    assert signature.timestamp_time is None and signature.level == "B-B"


def test_xades_intermediate_certificate_with_a_bad_name_is_a_format_failure(samples: Samples):
    # The issuing CA's certificate in KeyInfo reached certvalidator unparsed (UnicodeDecodeError).
    tree = etree.fromstring(samples.xml)
    certificates = tree.findall(f".//{{{xades.DS}}}X509Certificate")
    der = base64.b64decode(certificates[1].text)
    at = der.find("Nghệ".encode())
    certificates[1].text = base64.b64encode(der[:at] + b"\xff" + der[at + 1 :]).decode()
    report = xml_signing.verify_xml(etree.tostring(tree), samples.online)
    [signature] = report.signatures
    assert signature.sub_indication is SubIndication.FORMAT_FAILURE
    assert "does not hold a certificate" in signature.details[0]


@pytest.mark.parametrize("namespace", [b"kyso", b"urn?kyso:test"])
def test_xml_with_a_relative_namespace_uri_is_invalid(samples: Samples, namespace: bytes):
    # libxml2's C14N refuses relative namespace URIs: an uncaught C14NError before.
    broken = samples.xml.replace(b'xmlns="urn:kyso:test"', b'xmlns="' + namespace + b'"', 1)
    assert broken != samples.xml
    with pytest.raises(InvalidDocument, match="cannot be canonicalized"):
        xml_signing.verify_xml(broken, samples.online)
