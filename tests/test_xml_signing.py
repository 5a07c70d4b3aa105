"""XAdES on edXML packages and status messages: xmlsec1 interop, Kyso's verdicts, the CLI."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from cryptography import x509
from lxml import etree
from pyhanko.sign.timestamps import HTTPTimeStamper

from certs.keystore import SigningKey, open_key
from certs.truststore import load_certificates
from certs.tsa import InProcessTimeStamper
from signer import edxml, safexml, xml_signing
from signer.errors import InvalidDocument, NoSignature, SigningFailed, UnsupportedFormat
from signer.levels import Level
from signer.policy import ValidationPolicy
from signer.report import Indication, Report, SubIndication
from signer.xades import XmlVerification

from .conftest import PASSPHRASE, KysoEnv, Server, xmlsec1_verify

SEAL = "seal-000.00.00.H41"
PERSON = "person-nguyen-van-an"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
XADES = "{http://uri.etsi.org/01903/v1.3.2#}"
REPORT_SCHEMA = json.loads((Path(__file__).parents[1] / "schemas/report.schema.json").read_text())
DECISION_PDF = b"%PDF-1.7\n% Quyet dinh 15/QD-UBND\n" + bytes(range(256)) * 40


# --- Helpers (also used by test_xml_attacks) -------------------------------------------------


def sample_package(**changes) -> edxml.Package:
    """Decision 15/QĐ-UBND from the province to two departments, with two attachments."""
    fields = dict(
        sender=edxml.Organization("000.00.00.H41", "UBND tỉnh Nghệ An", email="ubnd@nghean.gov.vn"),
        recipients=(
            edxml.Organization("000.00.21.H41", "Sở Tài chính"),
            edxml.Organization("000.00.22.H41", "Sở Nội vụ"),
        ),
        code=edxml.DocumentCode("15", "QĐ-UBND"),
        place="Nghệ An",
        promulgation_date=dt.date(2026, 11, 25),
        document_type=edxml.DocumentType("1", "Quyết định"),
        subject="Về việc phê duyệt kế hoạch chuyển đổi số năm 2027",
        signer_info=edxml.SignerInfo("Nguyễn Văn An", "Chủ tịch"),
        trace=(
            edxml.TraceHeader(
                "000.00.00.H41", dt.datetime(2026, 11, 25, 14, 7, 9, tzinfo=edxml.VN_TZ)
            ),
        ),
        business=edxml.Business(),
        attachments=(
            edxml.Attachment("cid:qd-15", "QD-15.pdf", "application/pdf", DECISION_PDF),
            edxml.Attachment("cid:phu-luc", "Phu-luc.txt", "text/plain", "Phụ lục I".encode()),
        ),
    )
    fields.update(changes)
    return edxml.Package(**fields)


def sample_status(**changes) -> edxml.StatusMessage:
    package = sample_package()
    fields = dict(
        response_for=edxml.ResponseFor(
            "000.00.00.H41", "15/QĐ-UBND", package.promulgation_date, package.document_id
        ),
        sender=edxml.Organization("000.00.21.H41", "Sở Tài chính"),
        code=edxml.StatusCode.REGISTERED,
        timestamp=dt.datetime(2026, 11, 25, 15, 0, 0, tzinfo=edxml.VN_TZ),
        staff=edxml.StaffInfo(department="Văn thư", staff="Trần Thị Bình"),
    )
    fields.update(changes)
    return edxml.StatusMessage(**fields)


def key_ref(env: KysoEnv, name: str) -> str:
    return f"p12:{env.pki / 'keys' / f'{name}.p12'}"


def demo_key(env: KysoEnv, name: str = SEAL) -> SigningKey:
    return open_key(key_ref(env, name), PASSPHRASE.encode())


def sign(env: KysoEnv, data: bytes, name: str = SEAL, level: str = "B-B") -> bytes:
    """Sign with a demo key; B-T asks the PKI's TSA in process (see KysoEnv.pki_services)."""
    timestamper = InProcessTimeStamper(env.pki_services.tsa) if level == "B-T" else None
    with demo_key(env, name) as key:
        return xml_signing.sign_xml(data, key, level=Level(level), timestamper=timestamper)


def policy(env: KysoEnv, offline: bool = False, **kwargs) -> ValidationPolicy:
    """Trusting the demo root, with the PKI's OCSP and CRLs answered in process."""
    return ValidationPolicy(
        tuple(load_certificates(env.root)), offline=offline, local=env.pki_services.answer, **kwargs
    )


def verify(env: KysoEnv, data: bytes, offline: bool = False, **kwargs) -> Report:
    return xml_signing.verify_xml(data, policy(env, offline, **kwargs), "package.xml")


def verify_document(env: KysoEnv, data: bytes, offline: bool = False) -> XmlVerification:
    return xml_signing.verify_document(data, policy(env, offline), "package.xml")


# --- Interop and verdicts ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "level"), [(SEAL, "B-B"), (PERSON, "B-T")])
def test_xmlsec1_and_kyso_accept_kyso_xades(
    kyso_env: KysoEnv, tmp_path: Path, name: str, level: str
) -> None:
    env = kyso_env
    signed = sign(env, edxml.build_package(sample_package()), name, level)
    path = tmp_path / "signed.xml"
    path.write_bytes(signed)
    checked = xmlsec1_verify(env, path)
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr

    report = verify(env, signed)
    [signature] = report.signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert (report.format, signature.format, signature.level) == ("XML", "XAdES", level)
    assert signature.signer.sha256 == _sha256_of_cert(env.cert(name))
    assert signature.claimed_signing_time is not None
    assert (signature.timestamp_time is not None) == (level == "B-T")
    assert [c.common_name for c in signature.chain[1:]] == ["Kyso Issuing CA", "Kyso Root CA"]
    assert {e.kind for e in signature.revocation} >= {"OCSP"}
    assert "hợp lệ" in signature.explanation_vi and "is valid" in signature.explanation_en


def test_a_timestamp_taken_from_another_signature_is_ignored(kyso_env: KysoEnv) -> None:
    env = kyso_env
    first = sign(env, edxml.build_package(sample_package()), level="B-T")
    second = sign(env, b"<a>another document</a>", level="B-T")
    stamp = f"{XADES}EncapsulatedTimeStamp"
    foreign = etree.fromstring(second).find(f".//{stamp}").text
    tree = etree.fromstring(first).getroottree()
    tree.getroot().find(f".//{stamp}").text = foreign
    # The timestamp is unsigned: the signature stays valid, but only at level B-B.
    [signature] = verify(env, etree.tostring(tree)).signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == "B-B" and signature.timestamp_time is None
    assert "the timestamp does not cover this signature: ignored" in signature.details


def _sha256_of_cert(path: Path) -> str:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_signature_has_the_xades_baseline_structure(kyso_env: KysoEnv) -> None:
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    root = etree.fromstring(signed)
    header = root.find(f"{{{edxml.NS}}}edXMLEnvelope/{{{edxml.NS}}}edXMLHeader")
    # QCVN 102 puts the signature last in edXMLHeader.
    assert header[-1].tag == f"{DS}Signature"
    signature = header[-1]
    method = signature.find(f"{DS}SignedInfo/{DS}SignatureMethod").get("Algorithm")
    assert method.endswith("#rsa-sha256")
    c14n = signature.find(f"{DS}SignedInfo/{DS}CanonicalizationMethod").get("Algorithm")
    assert c14n == "http://www.w3.org/2001/10/xml-exc-c14n#"
    content, properties = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    assert content.get("URI") == ""
    transforms = [t.get("Algorithm") for t in content.iter(f"{DS}Transform")]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    assert properties.get("Type") == "http://uri.etsi.org/01903#SignedProperties"
    qualifying = signature.find(f"{DS}Object/{XADES}QualifyingProperties")
    assert qualifying.get("Target") == f"#{signature.get('Id')}"
    signed_signature = qualifying.find(f"{XADES}SignedProperties/{XADES}SignedSignatureProperties")
    time = dt.datetime.fromisoformat(signed_signature.find(f"{XADES}SigningTime").text)
    assert time.utcoffset() == dt.timedelta(hours=7)
    cert = f"{XADES}SigningCertificateV2/{XADES}Cert/{XADES}CertDigest"
    assert signed_signature.find(cert) is not None
    assert qualifying.find(f"{XADES}UnsignedProperties") is None  # B-B: no timestamp


def test_signed_content_is_the_package_without_its_signature(kyso_env: KysoEnv) -> None:
    unsigned = edxml.build_package(sample_package())
    verification = verify_document(kyso_env, sign(kyso_env, unsigned), offline=True)
    # Offline, the certificate cannot be checked, but the content is known to be intact.
    [signature] = verification.report.signatures
    assert signature.sub_indication is SubIndication.TRY_LATER, signature.details
    assert verification.signed_content is not None
    canonical = etree.tostring(
        safexml.parse(unsigned), method="c14n", exclusive=True, with_comments=False
    )
    assert verification.signed_content == canonical
    assert b"Signature" not in verification.signed_content
    assert edxml.parse_package(verification.signed_content) == sample_package()
    assert signature.signed_objects[0].startswith("signed data: the whole document")
    # The signed tree is what those bytes say, without a second parse.
    tree = verification.signed_tree
    assert next(tree.getroot().iter(f"{DS}Signature"), None) is None
    assert etree.tostring(tree, method="c14n", exclusive=True, with_comments=False) == canonical


def test_verify_package_reads_the_package_from_the_signed_tree(kyso_env: KysoEnv) -> None:
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    verified = xml_signing.verify_package(signed, policy(kyso_env, True))
    assert verified.package == sample_package()
    [signature] = verified.report.signatures
    assert signature.sub_indication is SubIndication.TRY_LATER, signature.details
    # A tree the caller parsed is verified as it is.
    again = xml_signing.verify_package(safexml.parse(signed), policy(kyso_env, True))
    assert again.package == sample_package()
    assert again.report.document_sha256 == verified.report.document_sha256


def test_verify_package_refuses_other_documents_and_reads_nothing_broken(
    kyso_env: KysoEnv,
) -> None:
    status = sign(kyso_env, edxml.build_status(sample_status()))
    with pytest.raises(InvalidDocument, match="not an edXML package"):
        xml_signing.verify_package(status, policy(kyso_env, True))
    with pytest.raises(InvalidDocument, match="not a status message"):
        xml_signing.verify_status(sign(kyso_env, b"<a>b</a>"), policy(kyso_env, True))
    with pytest.raises(NoSignature, match="no XML signature"):
        xml_signing.verify_package(edxml.build_package(sample_package()), policy(kyso_env, True))
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    tampered = signed.replace(b"Subject>", b"Subject> ", 1)
    broken = xml_signing.verify_package(tampered, policy(kyso_env, True))
    assert broken.package is None
    assert broken.report.signatures[0].sub_indication is SubIndication.HASH_FAILURE


def test_status_message_signed_and_verified(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    status = sample_status(code=edxml.StatusCode.REFUSED, description="Gửi nhầm cơ quan")
    signed = sign(env, edxml.build_status(status), "seal-000.00.21.H41")
    root = etree.fromstring(signed)
    assert root.tag == f"{{{edxml.NS}}}Status" and root[-1].tag == f"{DS}Signature"
    path = tmp_path / "status.xml"
    path.write_bytes(signed)
    assert xmlsec1_verify(env, path).returncode == 0
    verification = verify_document(env, signed)
    assert verification.report.passed, verification.report.signatures[0].details
    assert edxml.parse_status(verification.signed_content) == status
    verified = xml_signing.verify_status(signed, policy(env))
    assert verified.report.passed and verified.status == status


def test_a_refusal_needs_a_reason() -> None:
    with pytest.raises(InvalidDocument, match="needs a reason"):
        edxml.build_status(sample_status(code=edxml.StatusCode.REFUSED))


def test_ecdsa_key_signs_xades_that_xmlsec1_verifies(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    env.issue_person("000.00.04.H41", "Hoàng Văn Em", "Phó Giám đốc", key_type="p256")
    signed = sign(env, edxml.build_package(sample_package()), "person-hoang-van-em", "B-T")
    method = etree.fromstring(signed).find(f".//{DS}SignatureMethod").get("Algorithm")
    assert method.endswith("#ecdsa-sha256")
    path = tmp_path / "ecdsa.xml"
    path.write_bytes(signed)
    assert xmlsec1_verify(env, path).returncode == 0, xmlsec1_verify(env, path).stderr
    report = verify(env, signed)
    assert report.passed, report.signatures[0].details
    assert report.signatures[0].level == "B-T"


def test_revoked_signer_is_total_failed_revoked(kyso_env: KysoEnv) -> None:
    env = kyso_env
    env.revoke(env.issue_person("000.00.04.H41", "Đỗ Thị Lan"), "keyCompromise")
    signed = sign(env, edxml.build_package(sample_package()), "person-do-thi-lan")
    [signature] = verify(env, signed).signatures
    assert signature.indication is Indication.TOTAL_FAILED, signature.details
    assert signature.sub_indication is SubIndication.REVOKED
    assert any(e.status == "revoked" for e in signature.revocation)
    assert "thu hồi" in signature.explanation_vi


def test_untrusted_root_is_indeterminate_no_chain(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    signed = sign(env, edxml.build_package(sample_package()))
    stranger = tmp_path / "stranger.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(tmp_path / "k.pem"), "-out", str(stranger), "-subj", "/CN=Other Root", "-days", "1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    other = ValidationPolicy(tuple(load_certificates(stranger)))
    [signature] = xml_signing.verify_xml(signed, other).signatures
    assert signature.indication is Indication.INDETERMINATE
    assert signature.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def test_offline_without_revocation_data_is_try_later(kyso_env: KysoEnv) -> None:
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    [signature] = verify(kyso_env, signed, offline=True).signatures
    assert signature.indication is Indication.INDETERMINATE
    assert signature.sub_indication is SubIndication.TRY_LATER


def test_one_changed_byte_of_an_attachment_names_it(kyso_env: KysoEnv) -> None:
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    original = base64.b64encode(DECISION_PDF)
    changed = bytearray(DECISION_PDF)
    changed[100] ^= 0x01
    tampered = signed.replace(original, base64.b64encode(bytes(changed)))
    assert tampered != signed
    verification = verify_document(kyso_env, tampered, offline=True)
    [signature] = verification.report.signatures
    assert signature.indication is Indication.TOTAL_FAILED
    assert signature.sub_indication is SubIndication.HASH_FAILURE
    named = [d for d in signature.details if "QD-15.pdf" in d]
    assert named and "cid:qd-15" in named[0], signature.details
    assert not any("Phu-luc.txt" in d for d in signature.details)
    # Nothing may be read from a broken package.
    assert verification.signed_content is None and verification.signed_tree is None
    assert xml_signing.verify_package(tampered, policy(kyso_env, True)).package is None


def test_a_package_whose_manifest_lies_fails_even_when_signed() -> None:
    package = edxml.build_package(sample_package())
    wrong = hashlib_hex(b"something else")
    right = hashlib_hex("Phụ lục I".encode())
    lying = package.replace(right.encode(), wrong.encode())
    [mismatch] = edxml.check_attachments(safexml.parse(lying))
    assert mismatch.name == "Phu-luc.txt" and mismatch.expected_sha256 == wrong


def hashlib_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_comments_are_removed_before_signing(kyso_env: KysoEnv) -> None:
    package = edxml.build_package(sample_package())
    commented = package.replace(b"<edXML:Subject>", b"<!-- draft --><edXML:Subject>")
    signed = sign(kyso_env, commented)
    assert b"<!--" not in signed
    [signature] = verify(kyso_env, signed, offline=True).signatures
    assert signature.sub_indication is SubIndication.TRY_LATER, signature.details


def test_dates_in_both_orders_are_read_and_emitted_as_yyyy_mm_dd() -> None:
    package = edxml.build_package(sample_package())
    day_first = package.replace(
        b"<edXML:PromulgationDate>2026/11/25", b"<edXML:PromulgationDate>25/11/2026"
    )
    assert day_first != package
    parsed = edxml.parse_package(day_first)
    assert parsed.promulgation_date == dt.date(2026, 11, 25)
    assert b"2026/11/25" in edxml.build_package(parsed)


def test_signing_refuses_bad_input(kyso_env: KysoEnv) -> None:
    with demo_key(kyso_env) as key:
        with pytest.raises(InvalidDocument, match="not well-formed XML"):
            xml_signing.sign_xml(b"%PDF-1.7 not xml", key)
        invalid = edxml.build_package(sample_package()).replace(b"edXML:Subject", b"edXML:Title")
        with pytest.raises(InvalidDocument, match="not a valid edXML package: line"):
            xml_signing.sign_xml(invalid, key)
        signed = xml_signing.sign_xml(edxml.build_package(sample_package()), key)
        with pytest.raises(UnsupportedFormat, match="already signed"):
            xml_signing.sign_xml(signed, key)
        with pytest.raises(SigningFailed, match="needs a timestamp authority"):
            xml_signing.sign_xml(b"<a/>", key, level=Level.B_T)


def test_a_key_that_is_not_its_certificates_key_refuses_to_sign(kyso_env: KysoEnv) -> None:
    """A token holding another key than its certificate names: nothing is returned."""
    with demo_key(kyso_env) as key, demo_key(kyso_env, PERSON) as other:
        mismatched = dataclasses.replace(key, certificate=other.certificate, chain=other.chain)
        with pytest.raises(SigningFailed, match="does not verify with its certificate"):
            xml_signing.sign_xml(b"<a>b</a>", mismatched)


def test_tsa_down_is_a_clear_signing_error(kyso_env: KysoEnv) -> None:
    dead = HTTPTimeStamper("http://127.0.0.1:9/pki/tsa", timeout=2)
    with demo_key(kyso_env) as key, pytest.raises(SigningFailed, match="timestamp authority"):
        xml_signing.sign_xml(b"<a>b</a>", key, level=Level.B_T, timestamper=dead)


def test_any_xml_document_can_be_signed(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    document = '<?xml version="1.0"?><BienBan xmlns="urn:kyso:test"><Noi>Vinh</Noi></BienBan>'
    signed = sign(env, document.encode())
    path = tmp_path / "any.xml"
    path.write_bytes(signed)
    assert xmlsec1_verify(env, path).returncode == 0
    verification = verify_document(env, signed)
    assert verification.report.passed
    assert verification.signed_content == (
        b'<BienBan xmlns="urn:kyso:test"><Noi>Vinh</Noi></BienBan>'
    )


# --- The command line --------------------------------------------------------------------------


@pytest.mark.system
def test_cli_sign_xml_then_kyso_verify(server: Server, tmp_path: Path) -> None:
    env = server.env
    source = tmp_path / "goi-tin.xml"
    source.write_bytes(edxml.build_package(sample_package()))
    signed = tmp_path / "goi-tin.signed.xml"
    result = env.kyso(
        "sign", "xml", str(source), "-o", str(signed), "--key", key_ref(env, PERSON),
        "--level", "B-T",
    )  # fmt: skip
    assert "XAdES B-T" in result.stdout and "Nguyễn Văn An" in result.stdout
    assert xmlsec1_verify(env, signed).returncode == 0
    verified = env.kyso("verify", str(signed), "--json")
    data = json.loads(verified.stdout)
    jsonschema.validate(data, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["passed"] is True and data["format"] == "XML"
    assert data["signatures"][0]["level"] == "B-T"
    assert data["signatures"][0]["coverage"] == "ENTIRE_FILE"

    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"QD-15.pdf", b"QD-16.pdf"))
    failed = env.kyso("verify", str(tampered), "--json", check=False)
    assert failed.returncode == 1
    data = json.loads(failed.stdout)
    jsonschema.validate(data, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["signatures"][0]["sub_indication"] == "HASH_FAILURE"


@pytest.mark.system
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not XML", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>', "DTD"),
        (
            b'<edXML:edXML xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>',
            "not a valid edXML package",
        ),
    ],
    ids=["not-xml", "empty", "xxe", "wrong-schema"],
)
def test_cli_sign_xml_bad_input_exits_2(
    kyso_env: KysoEnv, tmp_path: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "in.xml"
    source.write_bytes(content)
    output = tmp_path / "out.xml"
    result = kyso_env.kyso(
        "sign", "xml", str(source), "-o", str(output), "--key", key_ref(kyso_env, SEAL),
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and message in line, line
    assert not output.exists()


@pytest.mark.system
def test_cli_sign_xml_bad_options_exit_2(kyso_env: KysoEnv, tmp_path: Path) -> None:
    source = tmp_path / "in.xml"
    source.write_bytes(b"<a/>")
    args = ("sign", "xml", str(source), "-o", str(tmp_path / "o.xml"))
    bad_level = kyso_env.kyso(
        *args, "--key", key_ref(kyso_env, SEAL), "--level", "B-X", check=False
    )
    assert bad_level.returncode == 2 and "B-X" in bad_level.stderr
    missing_key = kyso_env.kyso(*args, "--key", "p12:/nonexistent.p12", check=False)
    assert missing_key.returncode == 2
    assert "error: cannot read key file /nonexistent.p12" in missing_key.stderr
    bad_ref = kyso_env.kyso(*args, "--key", "file:key.pem", check=False)
    assert bad_ref.returncode == 2 and "unknown key reference" in bad_ref.stderr


@pytest.mark.system
def test_cli_verify_unsigned_or_unknown_algorithm_exits_2(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    unsigned = tmp_path / "unsigned.xml"
    unsigned.write_bytes(edxml.build_package(sample_package()))
    result = kyso_env.kyso("verify", str(unsigned), check=False)
    assert result.returncode == 2
    assert "holds no XML signature" in result.stderr

    signed = sign(kyso_env, edxml.build_package(sample_package()))
    unknown = signed.replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", b"urn:example:rsa-md2"
    )
    path = tmp_path / "unknown.xml"
    path.write_bytes(unknown)
    result = kyso_env.kyso("verify", str(path), check=False)
    assert result.returncode == 2
    assert "error: unsupported signature algorithm 'urn:example:rsa-md2'" in result.stderr
