"""Fuzzing the live server: mutated OCSP requests, time-stamp queries and documents to verify.

Never a 5xx, and always a well-formed answer: a DER OCSPResponse (``malformedRequest`` for
garbage), a DER TimeStampResp (``rejection`` for garbage), a validation report, or an RFC 9457
problem (application/problem+json with a stable code). About a hundred requests in all,
derandomized; then the server log must hold no unexpected error. Below, one regression test
for each server error the fuzzing found.
"""

from __future__ import annotations

import base64
import hashlib

import jsonschema
import pytest
import requests
from asn1crypto import algos, cms, core, tsp
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import event, given
from hypothesis import strategies as st

from kyso.samples import decision_pdf
from signer import cades, xml_signing

from .conftest import Demo, KysoEnv
from .fuzztools import (
    DER_TOKENS,
    PDF_TOKENS,
    XML_TOKENS,
    fuzz_settings,
    mutations,
    no_unexpected_server_errors,
)
from .pdftools import sign_with
from .test_xml_signing import REPORT_SCHEMA, SEAL, demo_key
from .webtools import create_token

# System tests (fuzzing the live server): only `make test` runs them.
pytestmark = [pytest.mark.system, pytest.mark.slow]

ATTACHMENT = b"Phu luc I: danh muc du an\n" * 40
PROVINCE = "000.00.00.H41"


class _TimeStampReply(core.Sequence):
    """RFC 3161 TimeStampResp, whose token is OPTIONAL (asn1crypto's class requires it)."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def ocsp_request(env: KysoEnv, name: str = SEAL) -> bytes:
    leaf = x509.load_pem_x509_certificate(env.cert(name).read_bytes())
    issuer = x509.load_pem_x509_certificate(env.issuing.read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(b"kyso-fuzz-nonce!"), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def tsa_query(**changes: object) -> bytes:
    fields = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": hashlib.sha256(b"Quyet dinh 15/QD-UBND").digest(),
        },
        "nonce": 20261125,
        "cert_req": True,
    }
    fields.update(changes)
    return tsp.TimeStampReq(fields).dump()


def is_problem(response: requests.Response) -> None:
    """A 4xx answered as RFC 9457 problem details."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code and body["code"] and body["title"]


def post_der(demo: Demo, path: str, der: bytes, media_type: str) -> requests.Response:
    return requests.post(
        f"{demo.url}{path}", data=der, headers={"Content-Type": media_type}, timeout=30
    )


def ocsp_answer(response: requests.Response) -> ocsp.OCSPResponse | None:
    """The OCSP answer, or None for an HTTP-level refusal (such as GET /pki/ocsp/ with an
    empty request: no such resource, a 404 problem)."""
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        is_problem(response)
        return None
    assert response.headers["Content-Type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(response.content)
    if answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        answer.certificate_status
    return answer


def tsa_answer(response: requests.Response) -> dict:
    assert response.status_code < 500, response.text[:300]
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"] == "application/timestamp-reply"
    reply = _TimeStampReply.load(response.content, strict=True).native
    granted = reply["status"]["status"] in ("granted", "granted_with_mods")
    assert granted == (reply["time_stamp_token"] is not None)
    return reply


@pytest.fixture(scope="module")
def documents(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small signed documents to mutate, one per format."""
    env = demo.env
    folder = tmp_path_factory.mktemp("http-fuzz")
    signed = folder / "signed.pdf"
    sign_with(env, decision_pdf(folder / "qd.pdf").path, signed, "person-nguyen-van-an")
    with demo_key(env, SEAL) as key:
        xml = xml_signing.sign_xml(b'<Doc xmlns="urn:kyso:test"><So>15</So></Doc>', key)
        signature = cades.sign_cms(ATTACHMENT, key)
    return {"pdf": signed.read_bytes(), "xml": xml, "cms": signature}


@pytest.fixture(scope="module")
def token(demo: Demo) -> str:
    """A token whose rate no fuzz run reaches (anonymous verification allows 300 a minute)."""
    return create_token(demo.env, PROVINCE, SEAL, rate=100_000)[1]


@pytest.fixture(scope="module")
def server_log(demo: Demo):  # type: ignore[no-untyped-def]
    """Fails the module's last test if the server logged an unexpected error meanwhile."""
    with no_unexpected_server_errors(demo.env.data, demo.env.port):
        yield


# --- Fuzzing -------------------------------------------------------------------------------


@given(data=st.data())
@fuzz_settings(35)
def test_fuzz_ocsp(demo: Demo, server_log: None, data: st.DataObject) -> None:
    request = data.draw(mutations(ocsp_request(demo.env), DER_TOKENS))
    if data.draw(st.booleans()):
        response = post_der(demo, "/pki/ocsp", request, "application/ocsp-request")
    else:  # RFC 6960 A.1: base64, then URL-encoded, in the path
        encoded = requests.utils.quote(base64.b64encode(request).decode(), safe="")
        response = requests.get(f"{demo.url}/pki/ocsp/{encoded}", timeout=30)
    answer = ocsp_answer(response)
    event(answer.response_status.name if answer else str(response.status_code))


@given(data=st.data())
@fuzz_settings(30)
def test_fuzz_tsa(demo: Demo, server_log: None, data: st.DataObject) -> None:
    query = data.draw(mutations(tsa_query(), DER_TOKENS))
    response = post_der(demo, "/pki/tsa", query, "application/timestamp-query")
    event(tsa_answer(response)["status"]["status"])


@given(data=st.data())
@fuzz_settings(35)
def test_fuzz_api_verify(
    demo: Demo, documents: dict[str, bytes], token: str, server_log: None, data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["pdf", "xml", "cms"]))
    tokens = {"pdf": PDF_TOKENS, "xml": XML_TOKENS, "cms": DER_TOKENS}[kind]
    mutated = data.draw(mutations(documents[kind], tokens))
    files = {"file": (f"document.{kind}", mutated)}
    if kind == "cms":
        files["content"] = ("phu-luc.txt", ATTACHMENT)
    response = requests.post(
        f"{demo.url}/api/v1/verify",
        files=files,
        data={"offline": "true"},  # verdicts need no network: this is about the input
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code < 500, response.text[:300]
    event(f"{kind} {response.status_code}")
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("application/json")
        jsonschema.validate(response.json(), REPORT_SCHEMA)
    else:
        is_problem(response)


# --- Regressions: each was a 500 before ----------------------------------------------------


def raw_ocsp_request(serial: int, algorithm: str = "sha256", hash_size: int = 32) -> bytes:
    """An OCSP request cryptography would refuse to build (asn1crypto encodes anything)."""
    cert_id = asn1_ocsp.CertId(
        {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
            "issuer_name_hash": b"\x01" * hash_size,
            "issuer_key_hash": b"\x02" * hash_size,
            "serial_number": serial,
        }
    )
    request = {"tbs_request": {"request_list": [{"req_cert": cert_id}]}}
    return asn1_ocsp.OCSPRequest(request).dump()


@pytest.mark.parametrize(
    "request_der",
    [
        pytest.param(raw_ocsp_request(5, algorithm="1.2.840.999.1"), id="unknown-hash-algorithm"),
        pytest.param(raw_ocsp_request(-5), id="negative-serial-number"),
        pytest.param(raw_ocsp_request(5, hash_size=7), id="hashes-of-the-wrong-length"),
    ],
)
def test_ocsp_request_cryptography_cannot_answer_is_malformed(
    demo: Demo, request_der: bytes
) -> None:
    response = post_der(demo, "/pki/ocsp", request_der, "application/ocsp-request")
    answer = ocsp_answer(response)
    assert answer and answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_time_stamp_query_with_a_real_where_a_boolean_was_is_rejected(demo: Demo) -> None:
    query = tsa_query()
    assert query.endswith(b"\x01\x01\xff")  # certReq BOOLEAN TRUE, last
    real = query[:-3] + b"\x09\x01\xff"  # the same bytes tagged REAL: asn1crypto cannot .native
    response = post_der(demo, "/pki/tsa", real, "application/timestamp-query")
    reply = tsa_answer(response)
    assert reply["status"]["status"] == "rejection"
    assert reply["status"]["fail_info"] == {"bad_data_format"}
