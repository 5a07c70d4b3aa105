"""API tokens hold their agency's seals only, and no answer says where a key is kept.

An officer's personal signature needs the officer in person: a token is refused a personal key
when it is made, and a token made before that rule (a row of an older database) is refused it
when it signs, while its seal still signs. ``GET /api/v1/keys`` gives names and certificates,
never a key reference, path, URI or PIN source.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.clock import utcnow
from certs.layout import PkiLayout
from certs.store import CertificateStore
from exchange.identity import credentials
from kyso.app import SERVICES_KEY, create_app
from kyso.db import make_engine, upgrade
from kyso.errors import PersonalKeyNotAllowed
from kyso.identities import Identities, Identity, key_name
from kyso.samples import decision_pdf
from kyso.signing import KeyRing, SigningService
from kyso.tokens import TOKEN_PREFIX, ApiToken, TokenStore, token_hash

from .conftest import PASSPHRASE, Demo, KysoEnv
from .test_api_errors import settings_of
from .webtools import assert_problem


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


PROVINCE = "000.00.00.H41"
PERSON, SEAL = "person-nguyen-van-an", f"seal-{PROVINCE}"
KEY_FIELDS = {
    "key", "name", "kind", "common_name", "agency_code", "subject", "issuer", "serial",
    "not_before", "not_after", "revoked", "sha256", "certificate",
}  # fmt: skip
# A path rooted at "/" after a delimiter, e.g. "p12:/srv/kyso/var/pki/keys/seal.p12".
ROOTED_PATH = re.compile(r"""(?:^|[\s"'=:,(])/[^\s"'/]+/""")


def leaks(text: str, env: KysoEnv) -> list[str]:
    """What in ``text`` tells where or how the server keeps a key."""
    markers = ("p12:", "pkcs11:", "pin-source", "module-path", str(env.data), "/pki/keys/")
    found = [marker for marker in markers if marker in text]
    return found + ROOTED_PATH.findall(text)


def without_certificates(body: dict) -> str:
    """``body`` as JSON, the PEM certificates left out (base64 has '/' in it)."""
    keys = [{k: v for k, v in key.items() if k != "certificate"} for key in body["keys"]]
    return json.dumps({**body, "keys": keys}, ensure_ascii=False)


def identities_of(env: KysoEnv) -> Identities:
    engine = make_engine(f"sqlite:///{env.data / 'kyso.sqlite'}")
    return Identities(CertificateStore(engine), PkiLayout(env.pki))


def old_token(env: KysoEnv, *names: str) -> dict[str, str]:
    """The Authorization header of a token row holding ``names``, inserted as an installation
    from before the seal-only rule would hold it (no check on the way in)."""
    identities = identities_of(env)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with identities.store.engine.begin() as conn:
        conn.execute(
            credentials.insert().values(
                id="tk_" + secrets.token_hex(6),
                kind="bearer",
                role="agency",
                label="iOffice (2025)",
                agency_code=PROVINCE,
                key_refs=json.dumps([identities.resolve(n) for n in names]),
                digest=token_hash(secret),
                rate_per_minute=1000,
                created_at=utcnow(),
            )
        )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return decision_pdf(tmp_path_factory.mktemp("pdf") / "qd.pdf").path.read_bytes()


def sign(
    demo: Demo, pdf: bytes, kind: str, headers: dict[str, str], **data: str
) -> requests.Response:
    """``POST /api/v1/sign/{kind}`` of a PDF (an XML document for ``xml``)."""
    files = {"file": ("qd.pdf", pdf)}
    if kind == "xml":
        files = {"file": ("vb.xml", b"<vanBan><so>15/QD-UBND</so></vanBan>")}
    return demo.http.post(
        f"{demo.url}/api/v1/sign/{kind}", headers=headers, files=files, data=data, timeout=60
    )


def test_keys_give_names_and_certificates_never_where_a_key_is_kept(demo: Demo) -> None:
    response = demo.http.get(f"{demo.url}/api/v1/keys", headers=demo.auth, timeout=10)
    assert response.status_code == 200
    assert leaks(without_certificates(response.json()), demo.env) == []
    keys = response.json()["keys"]
    assert SEAL in [key["name"] for key in keys]
    for key in keys:
        assert set(key) == KEY_FIELDS
        assert key["key"] == key["name"]
        certificate = x509.load_pem_x509_certificate(key["certificate"].encode())
        # the PEM field is the certificate and nothing else
        assert certificate.public_bytes(serialization.Encoding.PEM).decode() == key["certificate"]
        assert key["serial"] == format(certificate.serial_number, "X")
        assert key["issuer"] == certificate.issuer.rfc4514_string()
        assert key["subject"] == certificate.subject.rfc4514_string()
        assert key["not_before"] == certificate.not_valid_before_utc.isoformat()
        der = certificate.public_bytes(serialization.Encoding.DER)
        assert key["sha256"] == hashlib.sha256(der).hexdigest()


def test_an_hsm_key_is_shown_by_its_label_only(kyso_env: KysoEnv, tmp_path: Path) -> None:
    """A key reference holding a module path and a PIN file shows neither (fresh database)."""
    uri = (
        "pkcs11:token=kyso;object=seal-hsm?module-path=/usr/lib/softhsm/libsofthsm2.so"
        "&pin-source=file:/etc/kyso/pin"
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(engine)
    certificate = x509.load_pem_x509_certificate(kyso_env.cert(SEAL).read_bytes())
    CertificateStore(engine).add(certificate, "issuing", "seal", key_ref=uri)
    identity = Identities(CertificateStore(engine), PkiLayout(kyso_env.pki)).find(uri)
    assert identity is not None
    shown = identity.to_dict()
    assert shown["key"] == shown["name"] == "seal-hsm"
    del shown["certificate"]
    assert leaks(json.dumps(shown), kyso_env) == []
    assert key_name("pkcs11:token=kyso;id=%01%a2?pin-source=file:/etc/kyso/pin") == "id-01a2"
    unknown = key_name("file:/srv/kyso/keys/seal.pem")  # no scheme Kyso opens
    assert unknown.startswith("key-") and leaks(unknown, kyso_env) == []


@pytest.mark.system
def test_a_token_is_never_given_a_personal_key(kyso_env: KysoEnv) -> None:
    tokens = TokenStore(make_engine(f"sqlite:///{kyso_env.data / 'kyso.sqlite'}"))
    before = len(tokens.all())
    for keys in ((PERSON,), (SEAL, PERSON)):
        args = ["tokens", "create", "--agency", PROVINCE, "--name", "refused"]
        result = kyso_env.kyso(*args, *(a for k in keys for a in ("--key", k)), check=False)
        assert result.returncode == 2, result.stdout
        assert result.stderr.count("\n") == 1 and result.stdout == ""
        assert result.stderr.startswith(f"error: key {PERSON} is the personal key of Nguyễn Văn An")
        assert "need the officer in person" in result.stderr and "agency token" in result.stderr
    assert len(tokens.all()) == before


@pytest.mark.system
def test_an_older_token_is_refused_its_personal_key_and_keeps_its_seal(
    demo: Demo, pdf: bytes
) -> None:
    headers = old_token(demo.env, PERSON, SEAL)
    identities = identities_of(demo.env)
    person = identities.find(identities.resolve(PERSON))
    assert person is not None
    # By name or by certificate serial, for every kind of signature.
    for kind, key in (("pdf", PERSON), ("xml", PERSON), ("cms", person.serial)):
        body = assert_problem(
            sign(demo, pdf, kind, headers, key=key), 403, "personal-key-not-allowed"
        )
        assert "personal key of Nguyễn Văn An" in body["detail"], body
        assert (
            "need the officer in person and cannot be made with an agency token" in body["detail"]
        )
    signed = sign(demo, pdf, "xml", headers, key=SEAL)
    assert signed.status_code == 200, signed.text
    # Several keys granted, none named: the seal, never the personal key.
    default = sign(demo, pdf, "pdf", {**headers, "Accept": "application/json"})
    assert default.status_code == 200, default.text
    assert default.json()["key"] == SEAL
    listed = demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10).json()
    assert [k["name"] for k in listed["keys"]] == [SEAL]
    assert f"{PERSON} (personal: refused)" in demo.env.kyso("tokens", "list").stdout


def test_an_older_token_holding_only_a_personal_key_signs_nothing(demo: Demo, pdf: bytes) -> None:
    headers = old_token(demo.env, PERSON)
    assert_problem(sign(demo, pdf, "cms", headers), 403, "personal-key-not-allowed")
    listed = demo.http.get(f"{demo.url}/api/v1/keys", headers=headers, timeout=10).json()
    assert listed["keys"] == []


def test_the_opened_certificates_profile_decides(kyso_env: KysoEnv) -> None:
    """A grant whose identity claims a seal but opens An's key is refused: the CA's record of
    the certificate actually opened says it is personal."""
    identities = identities_of(kyso_env)
    person = identities.find(identities.resolve(PERSON))
    assert person is not None
    disguised = Identity(**{**person.__dict__, "name": "seal-disguised", "kind": "seal"})
    token = ApiToken("tk_old", "old", PROVINCE, (person.key_ref,), 10, None, None, None)  # type: ignore[arg-type]
    service = SigningService(identities, KeyRing(PASSPHRASE.encode()), (), None)
    with pytest.raises(PersonalKeyNotAllowed, match="personal key of Nguyễn Văn An"):
        service.check_key(token, disguised)


def test_a_key_the_server_cannot_open_is_a_503_that_says_not_where(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_of(demo.env), PASSPHRASE.encode())
    # The seal's key file no longer opens with the server's passphrase (changed, or corrupted).
    app.extensions[SERVICES_KEY].signing.keyring = KeyRing(b"not the passphrase")
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="kyso.signing"):
        response = client.post(
            "/api/v1/sign/xml",
            headers=demo.auth,
            data={"file": (io.BytesIO(b"<a/>"), "a.xml"), "key": SEAL},
        )
    assert response.status_code == 503, response.text
    assert response.json["code"] == "key-unavailable"
    assert f"key {SEAL} cannot be opened on this server" in response.json["detail"]
    assert leaks(response.text, demo.env) == []
    # The administrator still learns why, from the log.
    assert "wrong passphrase" in caplog.text
