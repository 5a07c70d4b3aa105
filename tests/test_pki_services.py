"""OCSP, CRL and TSA over real HTTP, checked with `openssl ocsp`, `openssl crl` and `openssl ts`."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp

from .conftest import KysoEnv, Server, self_signed_certificate


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kwargs)


def serial_of(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "X")


def ocsp_status(env: KysoEnv, leaf: Path) -> str:
    result = run(
        "openssl",
        "ocsp",
        "-issuer",
        str(env.issuing),
        "-cert",
        str(leaf),
        "-url",
        f"{env.url}/pki/ocsp",
        "-CAfile",
        str(env.root),
    )
    assert "Response verify OK" in result.stderr + result.stdout, result.stderr
    return result.stdout


def test_ocsp_good_then_revoked_after_kyso_pki_revoke(server: Server) -> None:
    env = server.env
    leaf = env.cert("person-pham-thi-dung")
    assert f"{leaf}: good" in ocsp_status(env, leaf)
    env.kyso("pki", "revoke", serial_of(leaf), "--reason", "keyCompromise")
    answer = ocsp_status(env, leaf)
    assert f"{leaf}: revoked" in answer
    assert "Reason: keyCompromise" in answer


def test_crl_over_http_lists_the_revoked_serial_and_verifies(server: Server, tmp_path) -> None:
    env = server.env
    leaf = env.cert("seal-000.02.23.H41")
    env.kyso("pki", "revoke", serial_of(leaf), "--reason", "cessation-of-operation")
    response = requests.get(f"{env.url}/pki/crl/issuing.crl", timeout=10)
    assert response.headers["Content-Type"] == "application/pkix-crl"
    crl_file = tmp_path / "issuing.crl"
    crl_file.write_bytes(response.content)
    checked = run(
        "openssl",
        "crl",
        "-inform",
        "DER",
        "-in",
        str(crl_file),
        "-noout",
        "-CAfile",
        str(env.pki / "ca" / "chain.pem"),
    )
    assert "verify OK" in checked.stderr + checked.stdout
    text = run("openssl", "crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text").stdout
    assert re.search(rf"Serial Number: 0*{serial_of(leaf)}\b", text, re.IGNORECASE)
    assert "Cessation Of Operation" in text
    assert "Next Update:" in text


def test_ocsp_get_form_and_nonce(server: Server) -> None:
    env = server.env
    leaf = x509.load_pem_x509_certificate(env.cert("seal-000.00.21.H41").read_bytes())
    issuer = x509.load_pem_x509_certificate(env.issuing.read_bytes())
    from cryptography.hazmat.primitives import hashes, serialization

    nonce = b"0123456789abcdef"
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA256())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    encoded = requests.utils.quote(base64.b64encode(request).decode(), safe="")
    answer = ocsp.load_der_ocsp_response(
        requests.get(f"{env.url}/pki/ocsp/{encoded}", timeout=10).content
    )
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_ocsp_unauthorized_for_a_certificate_from_another_ca(server: Server, tmp_path) -> None:
    env = server.env
    stranger = self_signed_certificate(tmp_path, "Stranger")
    result = run("openssl", "ocsp", "-issuer", str(env.issuing), "-cert", str(stranger),
                 "-url", f"{env.url}/pki/ocsp", "-CAfile", str(env.root))  # fmt: skip
    assert "Responder Error: unauthorized (6)" in result.stdout + result.stderr


def test_ocsp_unknown_for_a_serial_this_ca_never_issued(server: Server) -> None:
    from cryptography.hazmat.primitives import hashes, serialization

    from certs.ocsp import issuer_hashes

    env = server.env
    issuer = x509.load_pem_x509_certificate(env.issuing.read_bytes())
    root = x509.load_pem_x509_certificate(env.root.read_bytes())
    name_hash, key_hash = issuer_hashes(issuer, hashes.SHA256())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(name_hash, key_hash, 0x4B59534F, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    answer = ocsp.load_der_ocsp_response(
        requests.post(f"{env.url}/pki/ocsp", data=request, timeout=10,
                      headers={"Content-Type": "application/ocsp-request"}).content
    )  # fmt: skip
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    # Signed by the delegated responder, whose certificate the issuing CA signed.
    responder = answer.certificates[0]
    assert responder.issuer == issuer.subject and issuer.issuer == root.subject
    responder.public_key().verify(  # type: ignore[union-attr]
        answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30" * 5000])
def test_malformed_ocsp_request_gets_malformed_request_status(server: Server, body: bytes) -> None:
    response = requests.post(
        f"{server.url}/pki/ocsp",
        data=body,
        timeout=10,
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_get_with_invalid_base64(server: Server) -> None:
    # An OCSP client expects an OCSP answer: malformedRequest, not an HTTP error page.
    response = requests.get(f"{server.url}/pki/ocsp/%%%not-base64", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(response.content)
    assert parsed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def ts_query(tmp_path: Path, data: bytes, *extra: str) -> Path:
    source = tmp_path / "document.bin"
    source.write_bytes(data)
    query = tmp_path / "request.tsq"
    run(
        "openssl",
        "ts",
        "-query",
        "-data",
        str(source),
        "-sha256",
        "-cert",
        *extra,
        "-out",
        str(query),
    )
    return query


def post_tsa(server: Server, body: bytes, media_type: str = "application/timestamp-query"):
    return requests.post(
        f"{server.url}/pki/tsa", data=body, timeout=10, headers={"Content-Type": media_type}
    )


def test_tsa_reply_verifies_with_openssl_ts(server: Server, tmp_path: Path) -> None:
    env = server.env
    query = ts_query(tmp_path, "Quyết định số 15/QĐ-UBND".encode())
    response = post_tsa(server, query.read_bytes())
    assert response.headers["Content-Type"] == "application/timestamp-reply"
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(response.content)
    verified = ts_verify(env, reply, "-data", str(tmp_path / "document.bin"))
    assert "Verification: OK" in verified.stdout, verified.stderr
    # Also against the query itself (checks the nonce and the imprint).
    against_query = ts_verify(env, reply, "-queryfile", str(query))
    assert "Verification: OK" in against_query.stdout, against_query.stderr


def ts_verify(env: KysoEnv, reply: Path, *source: str) -> subprocess.CompletedProcess:
    """`openssl ts -verify` of ``reply`` against data or a query, trusting the demo root."""
    return run("openssl", "ts", "-verify", *source, "-in", str(reply), "-CAfile", str(env.root),
               "-untrusted", str(env.cert("tsa")))  # fmt: skip


def _reply_text(tmp_path: Path, content: bytes, name: str) -> str:
    reply = tmp_path / name
    reply.write_bytes(content)
    return run("openssl", "ts", "-reply", "-in", str(reply), "-text").stdout


def test_tsa_serials_are_monotonic_and_accuracy_is_stated(server: Server, tmp_path: Path) -> None:
    query = ts_query(tmp_path, b"same document").read_bytes()
    texts = [_reply_text(tmp_path, post_tsa(server, query).content, f"r{i}.tsr") for i in range(3)]
    serials = [int(re.search(r"Serial number: (0x[0-9A-F]+)", t).group(1), 16) for t in texts]
    assert serials == sorted(serials) and len(set(serials)) == 3
    assert "Accuracy: 0x01 seconds" in texts[0]
    assert "Hash Algorithm: sha256" in texts[0]


def _status(tmp_path: Path, content: bytes) -> str:
    return _reply_text(tmp_path, content, "status.tsr")


def test_tsa_rejects_garbage_with_bad_data_format(server: Server, tmp_path: Path) -> None:
    response = post_tsa(server, b"this is not DER")
    assert response.status_code == 200
    text = _status(tmp_path, response.content)
    assert "Status: Rejected" in text and "the data submitted has the wrong format" in text


def test_tsa_rejects_sha1(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "d.bin"
    source.write_bytes(b"x")
    query = tmp_path / "sha1.tsq"
    run("openssl", "ts", "-query", "-data", str(source), "-sha1", "-out", str(query))
    text = _status(tmp_path, post_tsa(server, query.read_bytes()).content)
    assert "Status: Rejected" in text and "unrecognized or unsupported algorithm" in text.lower()


def test_tsa_wrong_media_type_and_oversize_are_problem_details(server: Server) -> None:
    wrong = post_tsa(server, b"x", media_type="text/plain")
    assert wrong.status_code == 415
    assert wrong.headers["Content-Type"] == "application/problem+json"
    assert wrong.json()["code"] == "unsupported-media-type"
    huge = post_tsa(server, b"\x30" * (1024 * 1024))
    assert huge.status_code == 413
    assert huge.json()["status"] == 413


def test_unknown_ca_is_404_problem(server: Server) -> None:
    response = requests.get(f"{server.url}/pki/crl/nonexistent.crl", timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown-ca"


def test_ca_certificate_download(server: Server) -> None:
    response = requests.get(f"{server.url}/pki/ca/issuing.crt", timeout=10)
    assert response.headers["Content-Type"] == "application/pkix-cert"
    certificate = x509.load_der_x509_certificate(response.content)
    assert certificate == x509.load_pem_x509_certificate(server.env.issuing.read_bytes())


def test_tsa_serials_come_from_reserved_blocks_and_never_repeat(tmp_path: Path) -> None:
    """Two relay processes (two block holders) and a restart: every serial is new."""
    from certs.store import CertificateStore, SerialBlocks
    from kyso.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(engine)
    store = CertificateStore(engine)
    first, second = SerialBlocks(store, "tsa:serial", 3), SerialBlocks(store, "tsa:serial", 3)
    issued = [first(), second(), first(), first(), first(), second()]
    restarted = SerialBlocks(store, "tsa:serial", 3)
    issued += [restarted(), restarted()]
    assert len(set(issued)) == len(issued) and min(issued) >= 1
    assert issued[:4] == [1, 4, 2, 3]  # one block each, handed out in order
    assert restarted() > max(issued[:-2])
    engine.dispose()
