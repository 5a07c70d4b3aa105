"""No answer of the API says where a key is kept: ``GET /api/v1/keys`` gives names and
certificates, never a key reference, path, URI or PIN source; nor does a key that cannot be
opened.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.layout import PkiLayout
from certs.store import CertificateStore
from kyso.app import SERVICES_KEY, create_app
from kyso.db import make_engine, upgrade
from kyso.identities import Identities, key_name
from kyso.signing import KeyRing

from .conftest import PASSPHRASE, Demo, KysoEnv
from .test_api_errors import settings_of

PROVINCE = "000.00.00.H41"
SEAL = f"seal-{PROVINCE}"
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


def test_keys_give_names_and_certificates_never_where_a_key_is_kept(demo: Demo) -> None:
    response = requests.get(f"{demo.url}/api/v1/keys", headers=demo.auth, timeout=10)
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
