"""Detached CAdES for attachments: openssl interop, Kyso's verdicts, the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
from asn1crypto import cms
from pyhanko.sign.timestamps import HTTPTimeStamper

from certs.tsa import InProcessTimeStamper
from signer import cades
from signer.errors import InvalidDocument, SigningFailed, UnsupportedFormat
from signer.levels import Level
from signer.report import Indication, SubIndication

from .conftest import KysoEnv, Server
from .test_xml_signing import REPORT_SCHEMA, SEAL, demo_key, key_ref, policy

ATTACHMENT = "Phụ lục I: Danh mục dự án chuyển đổi số năm 2027\n".encode() * 2000


def sign(env: KysoEnv, content: bytes, name: str = SEAL, level: str = "B-B") -> bytes:
    """Sign with a demo key; B-T asks the PKI's TSA in process (see KysoEnv.pki_services)."""
    timestamper = InProcessTimeStamper(env.pki_services.tsa) if level == "B-T" else None
    with demo_key(env, name) as key:
        return cades.sign_cms(io.BytesIO(content), key, level=Level(level), timestamper=timestamper)


@cache
def untrusted_option() -> str:
    """``-untrusted`` where ``openssl cms`` has it (3.2+); older releases call it -certfile."""
    help_text = subprocess.run(["openssl", "cms", "-help"], capture_output=True, text=True)
    return "-untrusted" if "-untrusted" in help_text.stdout + help_text.stderr else "-certfile"


def openssl_verify(env: KysoEnv, signature: Path, content: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
         "-content", str(content), "-CAfile", str(env.root), untrusted_option(),
         str(env.issuing), "-out", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_openssl_and_kyso_accept_kyso_cades(kyso_env: KysoEnv, tmp_path: Path, level: str) -> None:
    env = kyso_env
    content = tmp_path / "phu-luc.txt"
    content.write_bytes(ATTACHMENT)
    signature = tmp_path / "phu-luc.txt.p7s"
    signature.write_bytes(sign(env, ATTACHMENT, level=level))
    checked = openssl_verify(env, signature, content)
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr

    report = cades.verify_cms(signature.read_bytes(), ATTACHMENT, policy(env), content.name)
    [result] = report.signatures
    assert result.indication is Indication.TOTAL_PASSED, result.details
    assert (report.format, result.format, result.level) == ("CMS", "CAdES", level)
    assert result.signer.common_name == "UBND tỉnh Nghệ An"
    assert (result.timestamp_time is not None) == (level == "B-T")
    assert result.claimed_signing_time is not None
    assert [c.common_name for c in result.chain[1:]] == ["Kyso Issuing CA", "Kyso Root CA"]
    assert {e.kind for e in result.revocation} >= {"OCSP"}
    # The content is the file itself: a CMS verdict hands out nothing else to read.
    assert not hasattr(report, "signed_content")


def test_cades_signed_attributes(kyso_env: KysoEnv) -> None:
    info = cms.ContentInfo.load(sign(kyso_env, ATTACHMENT))
    signed_data = info["content"]
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    [signer] = signed_data["signer_infos"]
    names = {a["type"].native for a in signer["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time", "signing_certificate_v2"} <= names
    assert signer["digest_algorithm"]["algorithm"].native == "sha256"
    when = next(a for a in signer["signed_attrs"] if a["type"].native == "signing_time")
    assert abs(when["values"][0].native - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_b_t_carries_a_signature_timestamp_token(kyso_env: KysoEnv) -> None:
    info = cms.ContentInfo.load(sign(kyso_env, ATTACHMENT, level="B-T"))
    [signer] = info["content"]["signer_infos"]
    unsigned = {a["type"].native for a in signer["unsigned_attrs"]}
    assert "signature_time_stamp_token" in unsigned


def test_one_changed_byte_is_hash_failure(kyso_env: KysoEnv) -> None:
    signature = sign(kyso_env, ATTACHMENT)
    changed = bytearray(ATTACHMENT)
    changed[-10] ^= 0x01
    [result] = cades.verify_cms(
        signature, bytes(changed), policy(kyso_env, offline=True), "phu-luc.txt"
    ).signatures
    assert result.indication is Indication.TOTAL_FAILED
    assert result.sub_indication is SubIndication.HASH_FAILURE
    assert "thay đổi" in result.explanation_vi


def test_offline_is_try_later_and_foreign_root_is_no_chain(kyso_env: KysoEnv) -> None:
    signature = sign(kyso_env, ATTACHMENT)
    [offline] = cades.verify_cms(signature, ATTACHMENT, policy(kyso_env, offline=True)).signatures
    assert (offline.indication, offline.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    from cryptography import x509

    from signer.policy import ValidationPolicy

    tsa = x509.load_pem_x509_certificate(kyso_env.cert("tsa").read_bytes())
    foreign = ValidationPolicy((tsa,), offline=True)  # a trust anchor that issued nothing here
    [untrusted] = cades.verify_cms(signature, ATTACHMENT, foreign).signatures
    assert untrusted.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND


def test_revoked_signer_is_total_failed_revoked(kyso_env: KysoEnv) -> None:
    env = kyso_env
    env.revoke(env.issue_person("000.00.04.H41", "Vũ Văn Phong"), "keyCompromise")
    signature = sign(env, ATTACHMENT, "person-vu-van-phong")
    [result] = cades.verify_cms(signature, ATTACHMENT, policy(env)).signatures
    assert result.indication is Indication.TOTAL_FAILED, result.details
    assert result.sub_indication is SubIndication.REVOKED


def test_ecdsa_key(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    env.issue_person("000.00.04.H41", "Lý Thị Giang", key_type="p256")
    signature = tmp_path / "a.p7s"
    signature.write_bytes(sign(env, ATTACHMENT, "person-ly-thi-giang", "B-T"))
    content = tmp_path / "a.txt"
    content.write_bytes(ATTACHMENT)
    assert openssl_verify(env, signature, content).returncode == 0
    report = cades.verify_cms(signature.read_bytes(), ATTACHMENT, policy(env))
    assert report.passed, report.signatures[0].details


def test_bad_input_is_an_error_not_a_verdict(kyso_env: KysoEnv, tmp_path: Path) -> None:
    offline = policy(kyso_env, offline=True)
    with pytest.raises(InvalidDocument, match="not a CMS signature"):
        cades.verify_cms(b"not a signature", ATTACHMENT, offline)
    with pytest.raises(InvalidDocument, match="not a CMS signature"):
        cades.verify_cms(b"\x30\x03\x02\x01\x00", ATTACHMENT, offline)
    # An attached (non-detached) signature made by openssl is refused as unsupported.
    key = tmp_path / "k.pem"
    cert = tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=Somebody", "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    content = tmp_path / "c.txt"
    content.write_bytes(b"hello")
    attached = subprocess.run(
        ["openssl", "cms", "-sign", "-nodetach", "-binary", "-outform", "DER", "-in",
         str(content), "-signer", str(cert), "-inkey", str(key)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    with pytest.raises(UnsupportedFormat, match="encapsulates its content"):
        cades.verify_cms(attached, b"hello", offline)
    # A PEM-armoured detached signature is read like DER.
    detached = subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-outform", "PEM", "-in", str(content),
         "-signer", str(cert), "-inkey", str(key)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    [plain] = cades.verify_cms(detached, b"hello", offline).signatures
    assert plain.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert plain.level is None and any("not CAdES" in d for d in plain.details)


def test_signing_errors(kyso_env: KysoEnv) -> None:
    with demo_key(kyso_env) as key:
        with pytest.raises(SigningFailed, match="needs a timestamp authority"):
            cades.sign_cms(b"x", key, level=Level.B_T)
        with pytest.raises(UnsupportedFormat, match="unsupported CAdES level"):
            cades.sign_cms(b"x", key, level=Level.B_LTA)
        dead = HTTPTimeStamper("http://127.0.0.1:9/pki/tsa", timeout=2)
        with pytest.raises(SigningFailed, match="timestamp authority did not answer"):
            cades.sign_cms(b"x", key, level=Level.B_T, timestamper=dead)


# --- The command line --------------------------------------------------------------------------


@pytest.mark.system
def test_cli_sign_cms_then_openssl_and_kyso_verify(server: Server, tmp_path: Path) -> None:
    env = server.env
    content = tmp_path / "phu-luc.pdf"
    content.write_bytes(ATTACHMENT)
    signature = tmp_path / "phu-luc.pdf.p7s"
    result = env.kyso(
        "sign", "cms", str(content), "-o", str(signature), "--key", key_ref(env, SEAL),
        "--level", "B-T",
    )  # fmt: skip
    assert "CAdES B-T" in result.stdout
    assert openssl_verify(env, signature, content).returncode == 0
    verified = env.kyso("verify", str(signature), "--content", str(content), "--json")
    data = json.loads(verified.stdout)
    jsonschema.validate(data, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["passed"] is True and data["format"] == "CMS"
    assert data["signatures"][0]["level"] == "B-T"
    content.write_bytes(ATTACHMENT + b"!")
    changed = env.kyso("verify", str(signature), "--content", str(content), "--json", check=False)
    assert changed.returncode == 1
    data = json.loads(changed.stdout)
    jsonschema.validate(data, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["signatures"][0]["sub_indication"] == "HASH_FAILURE"


@pytest.mark.system
def test_cli_sign_cms_bad_input_exits_2(kyso_env: KysoEnv, tmp_path: Path) -> None:
    content = tmp_path / "a.txt"
    content.write_bytes(b"hello")
    output = tmp_path / "a.p7s"
    missing = kyso_env.kyso(
        "sign", "cms", str(content), "-o", str(output), "--key", "p12:/nonexistent.p12",
        check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "error: cannot read key file" in missing.stderr
    wrong = {**kyso_env.env, "KYSO_PASSPHRASE": "wrong"}
    refused = kyso_env.kyso(
        "sign", "cms", str(content), "-o", str(output), "--key", key_ref(kyso_env, SEAL),
        env=wrong, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "wrong passphrase" in refused.stderr
    no_input = kyso_env.kyso(
        "sign", "cms", str(tmp_path / "nope"), "-o", str(output), "--key", "p12:x", check=False
    )
    assert no_input.returncode == 2
    assert not output.exists()
    garbage = tmp_path / "garbage.p7s"
    garbage.write_bytes(b"\x30\x82\x01\x00garbage")
    bad = kyso_env.kyso("verify", str(garbage), "--content", str(content), check=False)
    assert bad.returncode == 2
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("error: not a CMS signature"), line
