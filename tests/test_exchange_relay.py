"""The exchange relay over real HTTP on loopback (`kyso serve` in a subprocess): the commune →
district → province round trip with signed receipts and statuses, the CLI, idempotency,
multipart, PDF attachments, security, bad input, recall and update, push delivery and dead
letters, directory edits, the audit log and the clerk's page."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange.client import RelayClient, RelayError, check_receipt, response_for, verify_trail
from exchange.delivery import push_signature
from exchange.receipts import read_receipt
from exchange.wire import sign_request
from kyso.samples import decision_pdf
from signer import edxml, xml_signing
from signer.pdf import PdfSignOptions, sign_stream

from .conftest import KysoEnv, free_port, xmlsec1_verify
from .exchangetools import (
    DEPT,
    DIEN_CHAU,
    HUNG_DUNG,
    HUNG_LOC,
    NGHI_LOC,
    NGHI_PHONG,
    PROVINCE,
    VINH,
    ExchangeEnv,
    Relay,
    audit_events,
    clone_env,
    count_rows,
    package_bytes,
    running_relay,
    signed_package,
    signed_status,
    wait_for,
)
from .webtools import csrf_from

# System tests (the relay as agencies reach it: `kyso serve` subprocesses, the CLI): only
# `make test` runs them.
pytestmark = pytest.mark.system

DIEN_KY = "000.01.23.H41"  # a commune of Diễn Châu, used only by the revocation test
MAX_BYTES = 3_000_000


@pytest.fixture(scope="module")
def relay(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    env, cleanup = clone_env(
        kyso_env,
        tmp_path_factory.mktemp("relay"),
        KYSO_CLIENT_CERT_HEADER="X-Client-Cert",
        KYSO_EXCHANGE_MAX_BYTES=str(MAX_BYTES),
        KYSO_PUSH_BASE_DELAY="0.05",
        KYSO_PUSH_MAX_DELAY="0.2",
        # Long enough that a busy CI machine still gets the third push attempt in before the
        # delivery is given up (it was 1.5 s, and two failures plus a slow retry overran it).
        KYSO_DEAD_LETTER_AFTER="5",
        KYSO_AUDIT_CHECKPOINT_EVERY="1",
        # The push tests' endpoints listen on loopback, which the egress policy refuses
        # unless the administrator lists it.
        KYSO_PUSH_ALLOW="127.0.0.0/8",
    )
    yield from running_relay(env)
    cleanup()


def problem_of(excinfo: pytest.ExceptionInfo[RelayError], status: int, code: str) -> dict:
    error = excinfo.value
    assert (error.status, error.code) == (status, code), error.problem
    assert error.problem["type"] == f"urn:kyso:problem:{code}"
    return error.problem


def drain(client: RelayClient, ack: bool = True) -> list[dict]:
    items = client.inbox()["items"]
    for item in items:
        if ack:
            client.ack(item["id"])
    return items


def status_codes(items: list[dict], message_id: str, sender: str) -> list[str]:
    return [
        i["code"]
        for i in items
        if i["kind"] == "status" and i["message_id"] == message_id and i["from"] == sender
    ]


# --- The round trip -----------------------------------------------------------------------------


def test_commune_district_province_round_trip(relay: Relay, tmp_path: Path) -> None:
    env = relay.env
    commune, district, province = env.client(HUNG_DUNG), env.client(VINH), env.client(PROVINCE)

    # The commune reports to its district, copy to the province.
    report = signed_package(env, HUNG_DUNG, [VINH, PROVINCE], subject="Báo cáo tình hình lũ lụt")
    sent = commune.send(report)
    assert sent.created and sent.package_sha256 == hashlib.sha256(report).hexdigest()
    receipt_file = tmp_path / "receipt.xml"
    receipt_file.write_bytes(sent.receipt_xml)
    checked = xmlsec1_verify(env, receipt_file)
    assert checked.returncode == 0 and "OK" in checked.stderr, checked.stderr
    check = check_receipt(sent.receipt_xml, env.policy(), sent.message_id, sent.package_sha256)
    assert check.ok, check.detail
    assert check.report is not None and check.report.signatures[0].level == "B-T"
    receipt = xml_signing.verify_document(sent.receipt_xml, env.policy(), "receipt.xml")
    info = read_receipt(receipt.signed_content or b"")
    assert info.recipients == (VINH, PROVINCE)
    assert info.status.code is edxml.StatusCode.ARRIVED  # đã đến

    # The district pulls it, checks the commune's signature, acknowledges and handles it.
    [item] = [i for i in drain(district) if i["message_id"] == sent.message_id]
    assert (item["kind"], item["from"]) == ("message", HUNG_DUNG)
    package = district.package(sent.message_id)
    verified = xml_signing.verify_xml(package, env.policy(), "package.xml")
    assert verified.passed and verified.signatures[0].signer.agency_code == HUNG_DUNG
    for code in ("01", "03"):
        district.post_status(
            sent.message_id, signed_status(env, district, sent.message_id, VINH, code)
        )

    # The district sends its own report on it to the province.
    forward = signed_package(
        env,
        VINH,
        [PROVINCE],
        subject="Báo cáo tổng hợp của UBND thành phố Vinh",
        response_for=[response_for(district.message(sent.message_id))],
    )
    forwarded = district.send(forward)

    # The province receives both, and answers both.
    got = {i["message_id"] for i in drain(province) if i["kind"] == "message"}
    assert {sent.message_id, forwarded.message_id} <= got
    for code in ("01", "03"):
        province.post_status(
            sent.message_id, signed_status(env, province, sent.message_id, PROVINCE, code)
        )
    for code in ("01", "03", "04", "05", "06"):
        province.post_status(
            forwarded.message_id,
            signed_status(env, province, forwarded.message_id, PROVINCE, code),
        )
    for code in ("04", "05", "06"):
        district.post_status(
            sent.message_id, signed_status(env, district, sent.message_id, VINH, code)
        )

    # Statuses reach each sender, in order.
    at_commune = drain(commune)
    assert status_codes(at_commune, sent.message_id, VINH) == ["01", "03", "04", "05", "06"]
    assert status_codes(at_commune, sent.message_id, PROVINCE) == ["01", "03"]
    at_district = drain(district)
    assert status_codes(at_district, forwarded.message_id, PROVINCE) == [
        "01",
        "03",
        "04",
        "05",
        "06",
    ]
    assert [i["id"] for i in at_commune] == sorted(i["id"] for i in at_commune)

    # Both trails verify: receipt by the relay, every status by its agency's seal.
    for client, message_id in ((commune, sent.message_id), (district, forwarded.message_id)):
        trail = client.trail(message_id)
        checks = verify_trail(client, trail, env.policy())
        assert checks and all(c.ok for c in checks), [(c.what, c.detail) for c in checks]
        assert checks[0].what == "receipt"
    trail = commune.trail(sent.message_id)
    assert {r["agency"]: r["state"] for r in trail["recipients"]} == {VINH: "06", PROVINCE: "03"}
    assert all(r["delivered_at"] for r in trail["recipients"])
    # A recipient sees its own part only, and never the sender's receipt.
    seen_by_province = province.trail(sent.message_id)
    assert {e["from"] for e in seen_by_province["trail"]} == {PROVINCE}
    assert [r["agency"] for r in seen_by_province["recipients"]] == [PROVINCE]
    with pytest.raises(RelayError) as refused:
        province.download(f"/api/v1/messages/{sent.message_id}/receipt")
    problem_of(refused, 404, "unknown-message")
    # The original signed XML of every receipt and status can be downloaded as evidence.
    first = commune.download(trail["trail"][1]["href"])
    assert hashlib.sha256(first).hexdigest() == trail["trail"][1]["sha256"]
    assert b"<ds:Signature" in first


def test_the_cli_sends_lists_acknowledges_and_verifies(relay: Relay, tmp_path: Path) -> None:
    env = relay.env
    document = tmp_path / "cong-van.txt"
    document.write_text("Công văn về việc triển khai chuyển đổi số", encoding="utf-8")
    sent = env.kyso(
        "send", "--as", NGHI_PHONG, "--to", NGHI_LOC, str(document),
        "--subject", "Về việc chuyển đổi số", "--receipt", str(tmp_path / "r.xml"),
    )  # fmt: skip
    assert "receipt: valid" in sent.stdout, sent.stdout
    message_id = sent.stdout.split("message ")[1].split()[0]
    assert xmlsec1_verify(env, tmp_path / "r.xml").returncode == 0

    listed = env.kyso("inbox", "--as", NGHI_LOC, "--save", str(tmp_path / "in"), "--ack")
    assert message_id in listed.stdout
    [saved] = [p for p in (tmp_path / "in").iterdir() if message_id in p.name]
    assert b"chuy\xe1\xbb\x83n \xc4\x91\xe1\xbb\x95i s\xe1\xbb\x91" in base64.b64decode(
        saved.read_text().split("ContentTransferEncoded>")[1].split("<")[0]
    )
    assert message_id not in env.kyso("inbox", "--as", NGHI_LOC).stdout  # acknowledged

    accepted = env.kyso("status", message_id, "--as", NGHI_LOC, "--code", "accepted")
    assert "status 03 (Đã tiếp nhận)" in accepted.stdout
    early = env.kyso("status", message_id, "--as", NGHI_LOC, "--code", "arrived", check=False)
    assert early.returncode == 2 and "invalid-status-transition" in early.stderr
    trail = env.kyso("trail", message_id, "--as", NGHI_PHONG, "--verify")
    assert "✓ receipt" in trail.stdout and "✓ status 03" in trail.stdout, trail.stdout
    assert "✗" not in trail.stdout


# --- Idempotency, multipart, PDFs ---------------------------------------------------------------


def test_a_repeated_send_returns_the_same_receipt_and_creates_nothing(relay: Relay) -> None:
    env = relay.env
    client = env.client(HUNG_DUNG)
    package = signed_package(env, HUNG_DUNG, [VINH])
    before = count_rows(env, "exchange_messages")
    first = client.send(package, idempotency_key="retry-me-1")
    again = client.send(package, idempotency_key="retry-me-1")
    same_bytes = client.send(package, idempotency_key="another-key")
    assert first.created and not again.created and not same_bytes.created
    assert first.receipt_xml == again.receipt_xml == same_bytes.receipt_xml
    assert first.message_id == again.message_id == same_bytes.message_id
    assert count_rows(env, "exchange_messages") == before + 1
    assert count_rows(env, "exchange_deliveries", f"message_id = '{first.message_id}'") == 1
    with pytest.raises(RelayError) as conflict:
        client.send(signed_package(env, HUNG_DUNG, [VINH]), idempotency_key="retry-me-1")
    problem_of(conflict, 409, "idempotency-conflict")
    assert count_rows(env, "exchange_messages") == before + 1


def test_attachments_as_multipart_parts_matched_by_digest(relay: Relay) -> None:
    env = relay.env
    client = env.client(VINH)
    parts = [
        edxml.Attachment("cid:ke-hoach", "ke-hoach.txt", "text/plain", b"K" * 300_000),
        edxml.Attachment("cid:phu-luc", "phu-luc.csv", "text/csv", "Phụ lục;1\n".encode() * 900),
    ]
    package = signed_package(env, VINH, [PROVINCE], attachments=parts)
    sent = client.send(package, multipart=True)
    assert sent.created
    view = client.message(sent.message_id)
    assert view["transport"] == "multipart"
    assert [a["sha256"] for a in view["attachments"]] == [a.sha256 for a in parts]
    for attachment, listed in zip(parts, view["attachments"], strict=True):
        assert client.download(listed["href"]) == attachment.data
    rebuilt = env.client(PROVINCE).package(sent.message_id)  # the recipient gets it inline
    assert xml_signing.verify_xml(rebuilt, env.policy(), "package.xml").passed

    # A part that matches no manifest digest is refused.
    other = signed_package(env, VINH, [PROVINCE], attachments=parts)
    from exchange.wire import detach

    xml, found = detach(other)
    files = [("package", ("package.xml", xml, "application/xml"))]
    files += [
        (f"p{i}", (f"p{i}", data + b"!", "application/octet-stream"))
        for i, data in enumerate(found)
    ]
    with pytest.raises(RelayError) as refused:
        client.request("POST", "/api/v1/messages", files=files)
    assert "no part has the SHA-256" in problem_of(refused, 422, "invalid-package")["detail"]


def _pdf(directory: Path) -> bytes:
    path = directory / "quyet-dinh.pdf"
    decision_pdf(path)
    return path.read_bytes()


def _signed_pdf(env: ExchangeEnv, agency: str, pdf: bytes) -> bytes:
    source, output = io.BytesIO(pdf), io.BytesIO()
    with env.key(agency) as key:
        sign_stream(source, output, key, PdfSignOptions(), "quyet-dinh.pdf")
    return output.getvalue()


def test_pdf_attachments_must_carry_valid_signatures(relay: Relay, tmp_path: Path) -> None:
    env = relay.env
    client = env.client(PROVINCE)
    pdf = _pdf(tmp_path)
    signed = _signed_pdf(env, PROVINCE, pdf)
    good = edxml.Attachment("cid:qd", "quyet-dinh.pdf", "application/pdf", signed)
    assert client.send(signed_package(env, PROVINCE, [VINH], attachments=[good])).created

    before = count_rows(env, "exchange_messages")
    unsigned = edxml.Attachment("cid:qd", "quyet-dinh.pdf", "application/pdf", pdf)
    with pytest.raises(RelayError) as refused:
        client.send(signed_package(env, PROVINCE, [VINH], attachments=[unsigned]))
    problem = problem_of(refused, 422, "signature-invalid")
    assert "carries no signature" in problem["detail"] and problem["attachment"] == "quyet-dinh.pdf"
    tampered = bytearray(signed)
    position = tampered.index(b"Quy") if b"Quy" in tampered else len(tampered) // 3
    tampered[position] ^= 0x01
    changed = edxml.Attachment("cid:qd", "quyet-dinh.pdf", "application/pdf", bytes(tampered))
    with pytest.raises(RelayError) as broken:
        client.send(signed_package(env, PROVINCE, [VINH], attachments=[changed]))
    report = problem_of(broken, 422, "signature-invalid")["report"]
    assert report["format"] == "PDF" and not report["passed"]
    assert count_rows(env, "exchange_messages") == before


# --- Security ------------------------------------------------------------------------------


def test_an_agency_sees_only_its_own_inbox_and_messages(relay: Relay) -> None:
    env = relay.env
    sent = env.client(HUNG_DUNG).send(signed_package(env, HUNG_DUNG, [VINH]))
    vinh, stranger = env.client(VINH), env.client(NGHI_LOC)
    [item] = [i for i in vinh.inbox()["items"] if i["message_id"] == sent.message_id]
    assert all(i["message_id"] != sent.message_id for i in stranger.inbox()["items"])
    for path in ("", "/package", "/trail", "/receipt"):
        with pytest.raises(RelayError) as hidden:
            stranger.download(f"/api/v1/messages/{sent.message_id}{path}")
        problem_of(hidden, 404, "unknown-message")
    with pytest.raises(RelayError) as not_yours:
        stranger.ack(item["id"])  # cannot acknowledge what it did not receive
    problem_of(not_yours, 404, "unknown-message")
    status = signed_status(env, vinh, sent.message_id, NGHI_LOC, "01")
    with pytest.raises(RelayError) as no_status:
        stranger.post_status(sent.message_id, status)
    problem_of(no_status, 404, "unknown-message")
    assert vinh.ack(item["id"])["acked_at"]


def test_an_agency_cannot_send_as_another(relay: Relay) -> None:
    env = relay.env
    client = env.client(HUNG_DUNG)
    before = count_rows(env, "exchange_messages")
    # A package from another agency, signed by that agency: the credential decides.
    with pytest.raises(RelayError) as as_other:
        client.send(signed_package(env, HUNG_LOC, [VINH]))
    assert "not of 000.01.21.H41" in problem_of(as_other, 403, "sender-mismatch")["detail"]
    # Another agency's name on the package, signed with its own key.
    with pytest.raises(RelayError) as other_name:
        client.send(signed_package(env, HUNG_LOC, [VINH], key_of=HUNG_DUNG))
    assert "you are 000.01.21.H41" in problem_of(other_name, 403, "sender-mismatch")["detail"]
    # Its own name on the package, but another agency's key.
    with pytest.raises(RelayError) as other_key:
        client.send(signed_package(env, HUNG_DUNG, [VINH], key_of=HUNG_LOC))
    assert HUNG_LOC in problem_of(other_key, 403, "sender-mismatch")["detail"]
    assert count_rows(env, "exchange_messages") == before

    url = f"{env.url}/api/v1/inbox"
    credential = env.credential(HUNG_DUNG)
    no_auth = requests.get(url, timeout=10)
    assert no_auth.status_code == 401 and no_auth.json()["code"] == "unauthenticated"
    assert no_auth.headers["WWW-Authenticate"].startswith("Kyso-HMAC-SHA256")
    forged = sign_request(credential.key_id, "guessed", "GET", "/api/v1/inbox", "", b"")
    assert requests.get(url, headers={"Authorization": forged}, timeout=10).status_code == 401
    stale = sign_request(
        credential.key_id,
        credential.secret,
        "GET",
        "/api/v1/inbox",
        "",
        b"",
        int(time.time()) - 400,
    )
    answer = requests.get(url, headers={"Authorization": stale}, timeout=10)
    assert answer.status_code == 401 and "minutes" in answer.json()["detail"]
    header = sign_request(credential.key_id, credential.secret, "GET", "/api/v1/inbox", "", b"")
    assert requests.get(url, headers={"Authorization": header}, timeout=10).status_code == 200
    replay = requests.get(url, headers={"Authorization": header}, timeout=10)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    # Refused before anyone was identified: counted on /metrics, never chained.
    assert not any(e["actor"] == "unauthenticated" for e in audit_events(env, "rejected"))


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [(HUNG_DUNG, NGHI_LOC), (HUNG_DUNG, HUNG_LOC), (DEPT, HUNG_DUNG), (VINH, NGHI_PHONG)],
)
def test_routing_rules_are_enforced(relay: Relay, sender: str, recipient: str) -> None:
    env = relay.env
    with pytest.raises(RelayError) as denied:
        env.client(sender).send(signed_package(env, sender, [recipient]))
    assert "routing rule" in problem_of(denied, 403, "routing-denied")["detail"]


def _pem_header(certificate: x509.Certificate) -> str:
    return urllib.parse.quote(certificate.public_bytes(serialization.Encoding.PEM).decode())


def test_the_client_certificate_header_counts_only_from_the_tls_proxy(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kyso.app import create_app
    from kyso.config import Settings

    from .conftest import PASSPHRASE

    env = relay.env
    for name, value in {**env.env, "KYSO_EXCHANGE_WORKER": "0"}.items():
        monkeypatch.setenv(name, value)
    seal = x509.load_pem_x509_certificate(env.cert(f"seal-{VINH}").read_bytes())
    headers = {"X-Client-Cert": _pem_header(seal)}
    client = create_app(Settings.load(), PASSPHRASE.encode()).test_client()
    proxied = client.get("/api/v1/inbox", headers=headers, environ_base={"REMOTE_ADDR": "::1"})
    assert proxied.status_code == 200, proxied.json
    # The same header straight from another host is a claim, not a TLS handshake.
    direct = client.get("/api/v1/inbox", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert direct.status_code == 401 and direct.json["code"] == "unauthenticated"
    assert "192.0.2.7" in direct.json["detail"]
    monkeypatch.setenv("KYSO_CLIENT_CERT_PROXIES", "192.0.2.0/24")
    client = create_app(Settings.load(), PASSPHRASE.encode()).test_client()
    behind = client.get("/api/v1/inbox", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert behind.status_code == 200, behind.json


def test_mutual_tls_identifies_the_agency_by_its_certificate(relay: Relay) -> None:
    env = relay.env
    seal = x509.load_pem_x509_certificate(env.cert(f"seal-{VINH}").read_bytes())
    headers = {"X-Client-Cert": _pem_header(seal)}
    inbox = requests.get(f"{env.url}/api/v1/inbox", headers=headers, timeout=10)
    assert inbox.status_code == 200 and "items" in inbox.json()
    package = signed_package(env, VINH, [PROVINCE])
    sent = requests.post(
        f"{env.url}/api/v1/messages",
        data=package,
        headers={**headers, "Content-Type": "application/xml"},
        timeout=30,
    )
    assert sent.status_code == 201, sent.text
    as_province = requests.post(
        f"{env.url}/api/v1/messages",
        data=signed_package(env, PROVINCE, [VINH]),
        headers={**headers, "Content-Type": "application/xml"},
        timeout=30,
    )
    assert as_province.status_code == 403 and as_province.json()["code"] == "sender-mismatch"
    # A certificate the PKI did not issue is nobody.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "UBND thành phố Vinh"),
            x509.NameAttribute(NameOID.USER_ID, VINH),
        ]
    )
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(seal.serial_number)
        .not_valid_before(seal.not_valid_before_utc)
        .not_valid_after(seal.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    refused = requests.get(
        f"{env.url}/api/v1/inbox", headers={"X-Client-Cert": _pem_header(forged)}, timeout=10
    )
    assert refused.status_code == 401 and "not issued" in refused.json()["detail"]


def test_a_revoked_agency_certificate_is_refused(relay: Relay) -> None:
    env = relay.env
    client = env.client(DIEN_KY)
    issued = env.kyso("pki", "issue", "seal", "--agency", DIEN_KY).stdout
    serial = issued.split()[1]
    assert client.send(signed_package(env, DIEN_KY, [DIEN_CHAU])).created
    env.kyso("pki", "revoke", serial, "--reason", "keyCompromise")
    before = count_rows(env, "exchange_messages")
    with pytest.raises(RelayError) as refused:
        client.send(signed_package(env, DIEN_KY, [DIEN_CHAU]))
    assert "revoked" in problem_of(refused, 403, "certificate-refused")["detail"]
    assert count_rows(env, "exchange_messages") == before
    assert any(e["subject"] == serial for e in audit_events(env, "revoked"))
    seal = x509.load_pem_x509_certificate(env.cert(f"seal-{DIEN_KY}").read_bytes())
    over_tls = requests.get(
        f"{env.url}/api/v1/inbox", headers={"X-Client-Cert": _pem_header(seal)}, timeout=10
    )
    assert over_tls.status_code == 401 and "revoked" in over_tls.json()["detail"]


# --- Bad input ---------------------------------------------------------------------------------


def _rejections(env: ExchangeEnv) -> int:
    return count_rows(env, "audit_log", "event = 'rejected'")


def test_bad_packages_get_problem_details_and_only_an_audit_row(relay: Relay) -> None:
    env = relay.env
    client = env.client(HUNG_DUNG)
    unsigned = package_bytes(env, HUNG_DUNG, [VINH])
    signed = signed_package(env, HUNG_DUNG, [VINH])
    changed = signed.replace("tình hình".encode(), b"tinh hinh", 1)
    assert changed != signed
    stripped = signed.replace(b"<edXML:Subject>", b"<edXML:Subjekt>", 1).replace(
        b"</edXML:Subject>", b"</edXML:Subjekt>", 1
    )
    status_as_package = signed_status(
        env,
        client,
        "",
        HUNG_DUNG,
        "01",
        message={"document_id": f"{VINH},2026/11/25,1/CV", "code": "1/CV"},
    )
    cases = [
        (unsigned, 422, "unsigned"),
        (changed, 422, "signature-invalid"),
        (b"this is not XML", 422, "invalid-package"),
        (stripped, 422, "invalid-package"),
        (status_as_package, 422, "invalid-package"),
        (signed_package(env, HUNG_DUNG, ["000.09.21.H41"]), 422, "unknown-recipient"),
    ]
    messages, rejections, blobs = (
        count_rows(env, "exchange_messages"),
        _rejections(env),
        _blobs(env),
    )
    for body, status, code in cases:
        with pytest.raises(RelayError) as refused:
            client.send(body)
        problem = problem_of(refused, status, code)
        if code == "signature-invalid":
            assert problem["report"]["signatures"][0]["indication"] == "TOTAL_FAILED"
    assert count_rows(env, "exchange_messages") == messages
    assert _rejections(env) == rejections + len(cases)
    assert _blobs(env) == blobs  # no file of a refused package is kept

    too_big = b"<edXML>" + b"x" * (MAX_BYTES + 100_000)
    response = requests.post(
        f"{env.url}/api/v1/messages",
        data=too_big,
        headers={"Content-Type": "application/xml"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["code"] == "package-too-large"
    assert _rejections(env) == rejections + len(cases)  # nobody to chain it to: counted only
    with pytest.raises(RelayError) as too_big_signed_in:  # just over the limit, authenticated
        client.send(b"<edXML>" + b"x" * MAX_BYTES)
    problem_of(too_big_signed_in, 413, "package-too-large")
    assert _rejections(env) == rejections + len(cases) + 1
    assert count_rows(env, "exchange_messages") == messages
    wrong_type = requests.post(f"{env.url}/api/v1/messages", data=signed, timeout=10)
    assert wrong_type.status_code == 401  # no credentials: nothing is looked at


def _blobs(env: ExchangeEnv) -> int:
    return sum(1 for p in (env.data / "blobs").rglob("*") if p.is_file())


def test_replayed_and_out_of_order_statuses_are_refused(relay: Relay) -> None:
    env = relay.env
    sent = env.client(HUNG_DUNG).send(signed_package(env, HUNG_DUNG, [VINH]))
    vinh = env.client(VINH)
    arrived = signed_status(env, vinh, sent.message_id, VINH, "01")
    vinh.post_status(sent.message_id, arrived)
    statuses, rejections = count_rows(env, "exchange_statuses"), _rejections(env)
    with pytest.raises(RelayError) as replay:
        vinh.post_status(sent.message_id, arrived)
    assert "replay" in problem_of(replay, 409, "duplicate-status")["detail"]
    assert count_rows(env, "exchange_statuses") == statuses  # nothing stored …
    assert _rejections(env) == rejections + 1  # … but the refusal, in the audit log
    with pytest.raises(RelayError) as too_early:
        vinh.post_status(sent.message_id, signed_status(env, vinh, sent.message_id, VINH, "06"))
    problem_of(too_early, 409, "invalid-status-transition")
    # A status signed by another agency's seal, or naming another agency.
    with pytest.raises(RelayError) as other_seal:
        vinh.post_status(
            sent.message_id, signed_status(env, vinh, sent.message_id, VINH, "03", key_of=NGHI_LOC)
        )
    problem_of(other_seal, 403, "sender-mismatch")
    # An old status about another message with the same agency is not this message's.
    other = env.client(HUNG_DUNG).send(signed_package(env, HUNG_DUNG, [VINH]))
    old = signed_status(env, vinh, other.message_id, VINH, "01")
    with pytest.raises(RelayError) as elsewhere:
        vinh.post_status(sent.message_id, old)
    problem_of(elsewhere, 422, "invalid-package")
    vinh.post_status(
        sent.message_id,
        signed_status(env, vinh, sent.message_id, VINH, "02", "Không đúng thẩm quyền"),
    )
    with pytest.raises(RelayError) as after_refusal:
        vinh.post_status(sent.message_id, signed_status(env, vinh, sent.message_id, VINH, "03"))
    assert (
        "nothing may follow"
        in problem_of(after_refusal, 409, "invalid-status-transition")["detail"]
    )
    codes = [e["code"] for e in env.client(HUNG_DUNG).trail(sent.message_id)["trail"]]
    assert codes == ["01", "01", "02"]  # the receipt, then what was accepted


# --- Recall, update, replacement ------------------------------------------------------------------


def test_recall_and_update_are_answered_15_or_16(relay: Relay) -> None:
    env = relay.env
    province, vinh, nghi_loc = env.client(PROVINCE), env.client(VINH), env.client(NGHI_LOC)
    sent = province.send(signed_package(env, PROVINCE, [VINH, NGHI_LOC], subject="Quyết định"))
    vinh.post_status(
        sent.message_id, signed_status(env, vinh, sent.message_id, VINH, "02", "Sai nơi nhận")
    )
    nghi_loc.post_status(
        sent.message_id, signed_status(env, nghi_loc, sent.message_id, NGHI_LOC, "03")
    )
    with pytest.raises(RelayError) as not_a_sender_code:
        province.post_status(
            sent.message_id, signed_status(env, province, sent.message_id, PROVINCE, "03")
        )
    problem_of(not_a_sender_code, 403, "forbidden")
    recall = province.post_status(
        sent.message_id, signed_status(env, province, sent.message_id, PROVINCE, "13", "Lấy lại")
    )
    assert recall["delivered_to"] == [NGHI_LOC]  # not to the agency that refused it
    recalled = [i for i in drain(nghi_loc) if i["message_id"] == sent.message_id]
    assert [i["code"] for i in recalled if i["kind"] == "status"] == ["13"]
    with pytest.raises(RelayError) as must_answer:
        nghi_loc.post_status(
            sent.message_id, signed_status(env, nghi_loc, sent.message_id, NGHI_LOC, "04")
        )
    assert "15 or 16" in problem_of(must_answer, 409, "invalid-status-transition")["detail"]
    nghi_loc.post_status(
        sent.message_id, signed_status(env, nghi_loc, sent.message_id, NGHI_LOC, "15")
    )
    assert status_codes(drain(province), sent.message_id, NGHI_LOC) == ["03", "15"]

    # An update of the document names it in ResponseFor; recipients answer it.
    original = province.send(signed_package(env, PROVINCE, [NGHI_LOC], subject="Kế hoạch"))
    update = signed_package(
        env,
        PROVINCE,
        [NGHI_LOC],
        subject="Kế hoạch (cập nhật)",
        doc_type=edxml.BusinessDocType.UPDATE,
        reason="Sửa thời hạn",
        response_for=[response_for(province.message(original.message_id))],
    )
    updated = province.send(update)
    assert province.message(updated.message_id)["refers_to"] == original.message_id
    answer = signed_status(env, nghi_loc, updated.message_id, NGHI_LOC, "16", "Giữ bản cũ")
    assert nghi_loc.post_status(updated.message_id, answer)["code"] == "16"
    with pytest.raises(RelayError) as twice:
        nghi_loc.post_status(
            updated.message_id, signed_status(env, nghi_loc, updated.message_id, NGHI_LOC, "15")
        )
    problem_of(twice, 409, "invalid-status-transition")
    orphan = signed_package(
        env, PROVINCE, [NGHI_LOC], doc_type=edxml.BusinessDocType.REPLACE, reason="Thay thế"
    )
    with pytest.raises(RelayError) as unnamed:
        province.send(orphan)
    assert "ResponseFor" in problem_of(unnamed, 422, "invalid-package")["detail"]


# --- Push delivery and dead letters ---------------------------------------------------------------


class _Endpoint(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[dict[str, list[tuple[dict, bytes]]]] = {}
    failures_before_success = 2

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        calls = self.calls.setdefault(self.path, [])
        calls.append((dict(self.headers), body))
        ok = self.path == "/ok" and len(calls) > self.failures_before_success
        self.send_response(200 if ok else 500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Endpoint.calls = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_delivery_with_backoff_then_dead_letters(relay: Relay, endpoint: str) -> None:
    env = relay.env
    nghi_loc, dien_chau, province = (
        env.client(NGHI_LOC),
        env.client(DIEN_CHAU),
        env.client(PROVINCE),
    )
    drain(nghi_loc)
    drain(dien_chau)
    nghi_loc.request("PUT", "/api/v1/push-endpoint", json_body={"url": f"{endpoint}/ok"})
    dien_chau.request("PUT", "/api/v1/push-endpoint", json_body={"url": f"{endpoint}/down"})
    try:
        pushed = province.send(signed_package(env, PROVINCE, [NGHI_LOC]))
        lost = province.send(signed_package(env, PROVINCE, [DIEN_CHAU]))

        calls = wait_for(
            lambda: len(_Endpoint.calls.get("/ok", [])) >= 3 and _Endpoint.calls["/ok"]
        )
        assert calls, f"push attempts seen: {len(_Endpoint.calls.get('/ok', []))} of 3"
        assert len(calls) == 3  # two failures, then 2xx: no more attempts
        headers, body = calls[-1]
        item = json.loads(body)
        assert (item["message_id"], item["kind"]) == (pushed.message_id, "message")
        secret = env.credential(NGHI_LOC).secret
        assert headers["X-Kyso-Signature"] == push_signature(
            secret, headers["X-Kyso-Timestamp"], body
        )
        assert wait_for(lambda: not nghi_loc.inbox()["items"])  # 2xx acknowledged it

        admin, auditor = env.client("admin"), env.client("auditor")
        dead = wait_for(
            lambda: [
                d
                for d in admin.get_json("/api/v1/admin/dead-letters")["items"]
                if d["message_id"] == lost.message_id
            ],
            timeout=20,
        )
        assert dead and dead[0]["agency"] == DIEN_CHAU and dead[0]["attempts"] >= 2
        assert dead[0]["last_error"] == "HTTP 500"
        assert any(
            d["message_id"] == lost.message_id
            for d in auditor.get_json("/api/v1/admin/dead-letters")["items"]
        )
        with pytest.raises(RelayError) as agency_looks:
            dien_chau.get_json("/api/v1/admin/dead-letters")
        problem_of(agency_looks, 403, "forbidden")
        assert any(e["subject"] == lost.message_id for e in audit_events(env, "dead-letter"))
        # Still in the pull inbox, and an admin can push it again.
        assert any(i["message_id"] == lost.message_id for i in dien_chau.inbox()["items"])
        admin.request("POST", f"/api/v1/admin/dead-letters/{dead[0]['id']}/retry")
    finally:
        nghi_loc.request("DELETE", "/api/v1/push-endpoint")
        dien_chau.request("DELETE", "/api/v1/push-endpoint")


def push_endpoint_rows(env: ExchangeEnv, agency: str) -> int:
    return count_rows(env, "exchange_push_endpoints", f"agency = '{agency}'")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::ffff:169.254.169.254]/latest", "cloud metadata"),
        ("http://[::1]:8080/", "loopback"),
        ("http://localhost:8080/", "localhost is not an allowed host"),
        ("http://2130706433/", "non-standard form"),  # 127.0.0.1, as one number
        ("http://0x7f.1/", "non-standard form"),
        ("http://10.0.0.1/", "private"),
        ("http://push.example.vn/", "not an allowed host"),
        ("ftp://127.0.0.1/", "only http"),
        ("http://agency:secret@127.0.0.1/", "user name or password"),
        ("http://127.0.0.1/" + "a" * 2100, "longer than"),
    ],
)
def test_push_endpoints_outside_the_allow_list_are_refused(
    relay: Relay, url: str, why: str
) -> None:
    env = relay.env  # KYSO_PUSH_ALLOW=127.0.0.0/8
    hung_loc = env.client(HUNG_LOC)
    with pytest.raises(RelayError) as refused:
        hung_loc.request("PUT", "/api/v1/push-endpoint", json_body={"url": url})
    assert why in problem_of(refused, 422, "push-url-refused")["detail"]
    assert push_endpoint_rows(env, HUNG_LOC) == 0
    # What the administrator listed is accepted.
    listed = hung_loc.request(
        "PUT", "/api/v1/push-endpoint", json_body={"url": "http://127.0.0.1:9/push"}
    )
    assert listed.json() == {"agency": HUNG_LOC, "url": "http://127.0.0.1:9/push"}
    hung_loc.request("DELETE", "/api/v1/push-endpoint")
    assert push_endpoint_rows(env, HUNG_LOC) == 0


def test_without_an_allow_list_no_push_endpoint_is_accepted(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kyso.app import create_app
    from kyso.config import Settings

    from .conftest import PASSPHRASE

    env = relay.env
    for name, value in {**env.env, "KYSO_EXCHANGE_WORKER": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KYSO_PUSH_ALLOW")
    client = create_app(Settings.load(), PASSPHRASE.encode()).test_client()
    credential = env.credential(HUNG_LOC)
    for url in (
        "http://127.0.0.1:9/push",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "http://localhost/",
    ):
        body = json.dumps({"url": url}).encode()
        authorization = sign_request(
            credential.key_id, credential.secret, "PUT", "/api/v1/push-endpoint", "", body
        )
        answer = client.put(
            "/api/v1/push-endpoint",
            data=body,
            headers={"Authorization": authorization, "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (url, answer.json)
        assert answer.mimetype == "application/problem+json"
        assert answer.json["code"] == "push-url-refused", answer.json
        assert push_endpoint_rows(env, HUNG_LOC) == 0


# --- Directory, audit, the clerk's page ----------------------------------------------------


def test_admins_edit_the_directory_and_it_is_audited(relay: Relay) -> None:
    env = relay.env
    commune = {"name": "UBND xã Nghi Xuân", "level": "commune", "parent": NGHI_LOC}
    admin = env.client("admin")
    created = admin.request("PUT", "/api/v1/admin/agencies/000.03.22.H41", json_body=commune)
    assert created.status_code == 201
    for name in (VINH, "auditor"):
        with pytest.raises(RelayError) as refused:
            env.client(name).request(
                "PUT", "/api/v1/admin/agencies/000.04.22.H41", json_body=commune
            )
        problem_of(refused, 403, "forbidden")
    with pytest.raises(RelayError) as bad_parent:
        admin.request(
            "PUT",
            "/api/v1/admin/agencies/000.05.22.H41",
            json_body={**commune, "parent": "000.99.99.H41"},
        )
    problem_of(bad_parent, 422, "invalid-directory")
    listed = env.client(NGHI_LOC).directory()
    assert any(a["code"] == "000.03.22.H41" for a in listed["agencies"])
    assert set(listed["you_may_send_to"]) >= {PROVINCE, "000.03.22.H41", VINH}
    seals = {a["code"]: a["certificates"] for a in listed["agencies"]}
    assert any(c["profile"] == "seal" for c in seals[NGHI_LOC])
    assert any(e["subject"] == "000.03.22.H41" for e in audit_events(env, "admin"))


def _copy_db(env: ExchangeEnv, target: Path) -> str:
    with sqlite3.connect(env.data / "kyso.sqlite") as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def test_the_audit_log_verifies_and_tampering_is_named(relay: Relay, tmp_path: Path) -> None:
    env = relay.env
    env.client(HUNG_DUNG).send(signed_package(env, HUNG_DUNG, [VINH]))
    assert wait_for(lambda: count_rows(env, "audit_checkpoints") > 0)
    auditor = env.client("auditor")
    verdict = auditor.get_json("/api/v1/audit/verify")
    assert verdict["ok"] and verdict["checkpoints"] >= 1, verdict
    assert auditor.get_json("/api/v1/audit", after=0, limit=5)["items"][0]["seq"] == 1
    with pytest.raises(RelayError) as agency_reads:
        env.client(VINH).get_json("/api/v1/audit")
    problem_of(agency_reads, 403, "forbidden")
    for method in ("PUT", "DELETE", "POST"):
        assert requests.request(method, f"{env.url}/api/v1/audit", timeout=10).status_code in (
            401,
            405,
        )

    intact = env.kyso("--db", _copy_db(env, tmp_path / "intact.sqlite"), "audit", "verify")
    assert "audit log intact" in intact.stdout and "checkpoints" in intact.stdout

    def tampered(name: str, *statements: str) -> str:
        url = _copy_db(env, tmp_path / f"{name}.sqlite")
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("DROP TRIGGER audit_log_no_delete")
            for statement in statements:
                db.execute(statement)
        result = env.kyso("--db", url, "audit", "verify", check=False)
        assert result.returncode == 1, result.stdout
        return result.stderr

    with sqlite3.connect(env.data / "kyso.sqlite") as db:
        [(seq,)] = db.execute("SELECT min(seq) FROM audit_log WHERE event = 'sent'").fetchall()
        [(last,)] = db.execute("SELECT max(seq) FROM audit_log").fetchall()
    edited = tampered("edited", f"UPDATE audit_log SET actor = '{VINH}' WHERE seq = {seq}")
    assert f"first bad row {seq}" in edited and f"row {seq} was edited" in edited
    deleted = tampered("deleted", f"DELETE FROM audit_log WHERE seq = {seq}")
    assert f"first bad row {seq}" in deleted and f"row {seq} was deleted" in deleted
    inserted = tampered(
        "inserted",
        "INSERT INTO audit_log (seq, at, event, actor, subject, data, prev_hash, hash) "
        f"SELECT {last + 1}, at, event, actor, subject, data, hash, hash FROM audit_log "
        f"WHERE seq = {last}",
    )
    assert f"first bad row {last + 1}" in inserted and "inserted" in inserted


def _web_login(url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/login", timeout=10)
    response = session.post(
        f"{url}/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[:300]
    return session


def test_the_clerks_page_shows_inbox_and_outbox_in_vietnamese(relay: Relay) -> None:
    env = relay.env
    vinh = env.client(VINH)
    sent = env.client(PROVINCE).send(
        signed_package(env, PROVINCE, [VINH], subject="Về việc phòng chống bão số 3")
    )
    vinh.post_status(sent.message_id, signed_status(env, vinh, sent.message_id, VINH, "03"))
    anonymous = requests.get(f"{env.url}/exchange", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    password = (env.data / "secrets" / "demo-password").read_text().strip()
    clerk = _web_login(env.url, "lan", password)  # văn thư of the province
    page = clerk.get(f"{env.url}/exchange", timeout=10)
    assert page.status_code == 200
    assert "Văn bản đến" in page.text and "Văn bản đi" in page.text
    assert "Về việc phòng chống bão số 3" in page.text
    row = page.text.split(f'id="out-{sent.message_id}"')[1].split("</tr>")[0]
    assert f"{VINH}: Đã tiếp nhận" in row
    auditor = _web_login(env.url, "khoa", password)
    assert "dead letter" in auditor.get(f"{env.url}/exchange", timeout=10).text


def test_package_storage_is_content_addressed(relay: Relay) -> None:
    env = relay.env
    attachment = edxml.Attachment("cid:same", "same.txt", "text/plain", b"Cung mot noi dung")
    first = env.client(VINH).send(signed_package(env, VINH, [PROVINCE], attachments=[attachment]))
    second = env.client(VINH).send(signed_package(env, VINH, [PROVINCE], attachments=[attachment]))
    assert first.message_id != second.message_id
    path = env.data / "blobs" / attachment.sha256[:2] / attachment.sha256[2:4] / attachment.sha256
    assert path.read_bytes() == attachment.data  # one file for both messages
    for sent in (first, second):
        package = env.data / "blobs" / sent.package_sha256[:2] / sent.package_sha256[2:4]
        assert (package / sent.package_sha256).is_file()
