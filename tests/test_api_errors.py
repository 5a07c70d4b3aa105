"""Every error class of the API, as RFC 9457 problem details with a stable code; never a 500."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from certs.layout import PkiLayout
from certs.store import CertificateStore
from kyso.app import create_app
from kyso.config import Settings
from kyso.db import make_engine
from kyso.errors import KeyNotAllowed
from kyso.identities import Identities
from kyso.samples import decision_pdf
from kyso.signing import KeyRing, PdfRequest, SigningService
from kyso.tokens import ApiToken
from signer.errors import SigningFailed
from signer.levels import Level

from .conftest import PASSPHRASE, Demo, KysoEnv
from .webtools import assert_problem, create_token


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


PROVINCE, DEPARTMENT, CITY = "000.00.00.H41", "000.00.02.H41", "000.00.21.H41"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def post(demo: Demo, path: str, files=None, data=None, headers=None, token=True, **kwargs):
    sent = {**(demo.auth if token else {}), **(headers or {})}
    return demo.http.post(
        f"{demo.url}/api/v1/{path}", files=files, data=data, headers=sent, timeout=60, **kwargs
    )


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return decision_pdf(tmp_path_factory.mktemp("pdf") / "qd.pdf").path.read_bytes()


def settings_of(env: KysoEnv, **changes) -> Settings:
    base = Settings.load(
        data=str(env.data), db=f"sqlite:///{env.data / 'kyso.sqlite'}", pki=str(env.pki)
    )
    return Settings(**{**base.__dict__, **changes})


def test_401_without_or_with_a_bad_token(demo: Demo, pdf: bytes) -> None:
    files = {"file": ("qd.pdf", pdf)}
    body = assert_problem(
        post(demo, "sign/pdf", files, token=False), 401, "authentication-required"
    )
    assert "Bearer" in body["detail"]
    response = post(demo, "sign/pdf", files, token=False)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer abc", "Basic YW46YW4=", "Bearer kyso_" + "x" * 43):
        response = post(demo, "sign/pdf", files, headers={"Authorization": header}, token=False)
        assert_problem(response, 401, "invalid-token")
    assert_problem(
        demo.http.get(f"{demo.url}/api/v1/keys", timeout=10), 401, "authentication-required"
    )


@pytest.mark.system
def test_a_revoked_token_stops_at_once(demo: Demo) -> None:
    token_id, secret = create_token(demo.env, PROVINCE, "seal-000.00.00.H41", cli=True)
    headers = {"Authorization": f"Bearer {secret}"}
    assert demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10).ok
    demo.env.kyso("tokens", "revoke", token_id)
    response = demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10)
    assert "revoked" in assert_problem(response, 401, "invalid-token")["detail"]
    assert "revoked" in demo.env.kyso("tokens", "list").stdout


def test_403_another_agencys_key(demo: Demo, pdf: bytes) -> None:
    files = {"file": ("qd.pdf", pdf)}
    city_seal = demo.env.pki / "keys" / f"seal-{CITY}.p12"
    for key in (f"seal-{CITY}", f"p12:{city_seal}", "person-le-van-cuong"):
        response = post(demo, "sign/pdf", files, {"key": key})
        assert_problem(response, 403, "key-not-allowed")


def test_token_of_agency_b_cannot_use_agency_a_keys(demo: Demo, pdf: bytes) -> None:
    _, secret = create_token(demo.env, DEPARTMENT, f"seal-{DEPARTMENT}")
    headers = {"Authorization": f"Bearer {secret}"}
    files = {"file": ("qd.pdf", pdf)}
    for key in ("seal-000.00.00.H41", "person-nguyen-van-an"):
        response = post(demo, "sign/pdf", files, {"key": key}, headers, token=False)
        assert_problem(response, 403, "key-not-allowed")
    response = post(demo, "sign/pdf", files, {"key": f"seal-{DEPARTMENT}"}, headers, token=False)
    assert response.status_code == 200, response.text


@pytest.mark.system
def test_the_cli_grants_no_key_of_another_agency(kyso_env: KysoEnv) -> None:
    result = kyso_env.kyso(
        "tokens", "create", "--agency", DEPARTMENT, "--key", f"seal-{PROVINCE}", check=False
    )
    assert result.returncode == 2
    assert f"belongs to agency {PROVINCE}, not {DEPARTMENT}" in result.stderr
    result = kyso_env.kyso(
        "accounts", "add", "lan2", "--name", "Lan", "--role", "clerk", "--agency", PROVINCE,
        "--key", "person-nguyen-van-an", "--password-stdin", input="mat-khau-dai-du\n",
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "allowed: seal" in result.stderr


def test_a_forged_grant_still_cannot_sign(kyso_env: KysoEnv, tmp_path: Path) -> None:
    """Even a token row naming another agency's key is refused: the certificate's UID decides."""
    engine = make_engine(f"sqlite:///{kyso_env.data / 'kyso.sqlite'}")
    identities = Identities(CertificateStore(engine), PkiLayout(kyso_env.pki))
    service = SigningService(identities, KeyRing(PASSPHRASE.encode()), (), None)
    province_seal = identities.resolve(f"seal-{PROVINCE}")
    forged = ApiToken(
        "tk_forged",
        "forged",
        DEPARTMENT,
        (province_seal,),
        10,
        None,
        None,
        None,  # type: ignore[arg-type]
    )
    identity = identities.find(province_seal)
    assert identity is not None
    with pytest.raises(KeyNotAllowed, match=f"agency {PROVINCE}'s, not {DEPARTMENT}'s"):
        service.check_key(forged, identity)
    source = decision_pdf(tmp_path / "qd.pdf").path
    with pytest.raises(KeyNotAllowed):
        service.sign_pdf(forged, f"seal-{PROVINCE}", source, tmp_path / "out.pdf", PdfRequest())
    assert not (tmp_path / "out.pdf").exists()


def test_413_too_large(demo: Demo, kyso_env: KysoEnv) -> None:
    big_signature = b"\x30\x82" + os.urandom(11 * 1024 * 1024)
    response = post(
        demo, "verify", {"file": ("big.p7s", big_signature), "content": ("a.txt", b"a")}
    )
    assert_problem(response, 413, "document-too-large")
    # The request body limit, answered before the body is read (in-process, 1 KiB limit).
    app = create_app(settings_of(kyso_env, max_upload_mb=1), PASSPHRASE.encode())
    app.config["MAX_CONTENT_LENGTH"] = 1024
    client = app.test_client()
    response = client.post(
        "/api/v1/verify", data={"file": (io.BytesIO(b"%PDF-" + b"x" * 4096), "a.pdf")}
    )
    assert response.status_code == 413
    assert response.json["code"] == "request-entity-too-large"
    assert response.mimetype == "application/problem+json"


def test_415_wrong_media_or_file_type(demo: Demo) -> None:
    response = post(demo, "sign/pdf", json={"file": "JVBERi0="})
    assert_problem(response, 415, "unsupported-media-type")
    response = post(demo, "verify", data={"file": "x"}, token=False)
    assert_problem(response, 415, "unsupported-media-type")
    assert_problem(post(demo, "sign/pdf", {"file": ("a.png", PNG)}), 415, "unsupported-format")
    assert_problem(post(demo, "sign/xml", {"file": ("a.txt", b"hello")}), 415, "unsupported-format")
    assert_problem(post(demo, "verify", {"file": ("a.png", PNG)}), 415, "unsupported-format")


def test_422_unusable_documents(demo: Demo, pdf: bytes) -> None:
    truncated = pdf[: len(pdf) // 3]
    assert_problem(post(demo, "sign/pdf", {"file": ("t.pdf", truncated)}), 422, "invalid-document")
    assert_problem(post(demo, "verify", {"file": ("t.pdf", truncated)}), 422, "invalid-document")
    assert_problem(post(demo, "sign/pdf", {"file": ("e.pdf", b"")}), 422, "invalid-document")
    hostile = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "boom">]><a>&x;</a>'
    assert_problem(post(demo, "sign/xml", {"file": ("h.xml", hostile)}), 422, "invalid-document")
    response = post(
        demo,
        "sign/pdf",
        {"file": ("qd.pdf", pdf)},
        {"key": "seal-000.00.00.H41", "visible": "true", "box": "5000,5000,5100,5100"},
    )
    assert_problem(response, 422, "invalid-stamp")
    # a .p7s without the file it signs
    assert_problem(post(demo, "verify", {"file": ("s.p7s", b"\x30\x03\x02\x01\x01")}), 422,
                   "invalid-document")  # fmt: skip


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"level": "B-X"}, "level"),
        ({"level": ""}, "level"),
        ({"page": "abc"}, "page"),
        ({"page": "0"}, "page"),
        ({"box": "1,2"}, "box"),
        ({"box": "10,10,5,5"}, "box"),
        ({"visible": "maybe"}, "visible"),
        ({"style": "comic"}, "style"),
        ({"field": "a b"}, "field"),
    ],
)
def test_400_bad_parameters(demo: Demo, pdf: bytes, data: dict, field: str) -> None:
    response = post(demo, "sign/pdf", {"file": ("qd.pdf", pdf)}, data)
    assert assert_problem(response, 400, "invalid-request")["detail"].startswith(field)


def test_400_missing_file_and_bad_time(demo: Demo, pdf: bytes) -> None:
    response = post(demo, "sign/pdf", {"other": ("qd.pdf", pdf)})
    assert assert_problem(response, 400, "invalid-request")["detail"].startswith("file")
    response = post(demo, "verify", {"file": ("qd.pdf", pdf)}, {"at": "yesterday"})
    assert assert_problem(response, 400, "invalid-request")["detail"].startswith("at")
    response = post(demo, "sign/xml", {"file": ("a.xml", b"<a/>")}, {"level": "B-LTA"})
    assert_problem(response, 400, "invalid-request")


def test_429_the_tokens_rate(demo: Demo) -> None:
    _, secret = create_token(demo.env, PROVINCE, "seal-000.00.00.H41", rate=2)
    headers = {"Authorization": f"Bearer {secret}"}
    for _ in range(2):
        assert demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10).ok
    response = demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10)
    assert_problem(response, 429, "rate-limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # another token is not slowed down
    assert demo.http.get(f"{demo.url}/api/v1/keys", headers=demo.auth, timeout=10).ok


def test_405_and_404_are_problems_too(demo: Demo) -> None:
    response = demo.http.get(f"{demo.url}/api/v1/sign/pdf", timeout=10)
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]
    assert_problem(demo.http.get(f"{demo.url}/api/v1/nothing", timeout=10), 404, "not-found")


def test_b_t_without_a_time_stamping_authority_is_refused_by_name(kyso_env: KysoEnv) -> None:
    engine = make_engine(f"sqlite:///{kyso_env.data / 'kyso.sqlite'}")
    identities = Identities(CertificateStore(engine), PkiLayout(kyso_env.pki))
    service = SigningService(identities, KeyRing(PASSPHRASE.encode()), (), None)
    province_seal = identities.resolve(f"seal-{PROVINCE}")
    officer = ApiToken("tk_b_t", "b-t", PROVINCE, (province_seal,), 10, None, None, None)  # type: ignore[arg-type]
    xml = b"<vanBan><so>1/UBND</so></vanBan>"
    with pytest.raises(SigningFailed, match="needs a time-stamping authority"):
        service.sign_xml(officer, f"seal-{PROVINCE}", xml, Level.B_T)
    assert service.sign_xml(officer, f"seal-{PROVINCE}", xml, Level.B_B).data.startswith(b"<?xml")
