"""A key generated inside a real SoftHSM2 token signs; OpenSSL verifies the signature."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from certs.keystore import HsmError, open_key
from certs.pkcs11uri import Pkcs11Access

from .conftest import KysoEnv

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "264-1975"
ACCESS = Pkcs11Access(SOFTHSM_MODULE, PIN)  # what kyso/config.py makes of KYSO_PKCS11_*

pytestmark = pytest.mark.skipif(
    not Path(SOFTHSM_MODULE).exists() or shutil.which("softhsm2-util") is None,
    reason="SoftHSM2 is installed by `make test` (tools/system-packages.sh)",
)


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh SoftHSM2 token, initialised by the fixture, with its own config.

    Session-scoped: a PKCS#11 module reads its configuration once per process.
    """
    tmp_path = tmp_path_factory.mktemp("softhsm")
    store = tmp_path / "tokens"
    store.mkdir()
    config = tmp_path / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {store}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(config), "KYSO_PKCS11_PIN": PIN}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "kyso-test",
            "--pin",
            PIN,
            "--so-pin",
            "12345678",
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    os.environ.update(env)
    return env


def openssl_cms_verify(env: KysoEnv, p7s: Path, document: Path) -> subprocess.CompletedProcess:
    """OpenSSL's verdict on a detached CMS signature (OpenSSL 3.0 cms has no -untrusted)."""
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content",
         str(document), "-CAfile", str(env.root), "-certfile", str(env.issuing),
         "-purpose", "any", "-out", os.devnull],
        capture_output=True,
        text=True,
    )  # fmt: skip


@pytest.mark.system
def test_hsm_key_signs_cms_that_openssl_verifies(
    kyso_env: KysoEnv, token: dict[str, str], tmp_path: Path
) -> None:
    uri = "pkcs11:token=kyso-test;object=officer-hsm"
    env = {**kyso_env.env, **token}
    kyso_env.kyso(
        "pki",
        "issue",
        "person",
        "--agency",
        "000.00.22.H41",
        "--name",
        "Võ Thị Hằng",
        "--title",
        "Phó Chủ tịch",
        "--key-ref",
        uri,
        env=env,
    )

    # The private key was generated in the token and cannot leave it.
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    lib = pkcs11.lib(SOFTHSM_MODULE)
    with lib.get_token(token_label="kyso-test").open(user_pin=PIN) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label="officer-hsm")
        assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]

    document = tmp_path / "bao-cao.txt"
    document.write_text("Báo cáo tình hình kinh tế - xã hội tháng 11", encoding="utf-8")
    issuing = kyso_env.issuing.read_bytes()
    from cryptography import x509

    chain = (x509.load_pem_x509_certificate(issuing),)
    with open_key(uri, extra_certs=chain, pkcs11=ACCESS) as signing:
        assert signing.certificate.subject.rfc4514_string().startswith("CN=Võ Thị Hằng")
        signature = asyncio.run(
            signing.signer.async_sign_general_data(document.read_bytes(), "sha256", detached=True)
        )
    p7s = tmp_path / "bao-cao.txt.p7s"
    p7s.write_bytes(signature.dump())
    result = openssl_cms_verify(kyso_env, p7s, document)
    assert "Verification successful" in result.stderr, result.stderr
    document.write_text("Báo cáo đã bị sửa", encoding="utf-8")
    assert openssl_cms_verify(kyso_env, p7s, document).returncode != 0


@pytest.mark.system
@pytest.mark.parametrize(
    ("uri", "pin", "message"),
    [
        ("pkcs11:token=kyso-test;object=seal", "0000", "error: wrong PIN for token 'kyso-test'"),
        ("pkcs11:token=nope;object=seal", PIN, "error: no PKCS#11 token labelled 'nope'"),
        ("pkcs11:token=kyso-test", PIN, "names no key (give object=LABEL or id=…)"),
    ],
)
def test_hsm_errors_are_one_line(
    kyso_env: KysoEnv, token: dict[str, str], uri: str, pin: str, message: str
) -> None:
    env = {**kyso_env.env, **token, "KYSO_PKCS11_PIN": pin}
    result = kyso_env.kyso(
        "pki", "issue", "seal", "--agency", "000.00.03.H41", "--key-ref", uri, env=env,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.system
def test_public_key_from_token_matches_certificate(kyso_env: KysoEnv, token) -> None:
    uri = "pkcs11:token=kyso-test;object=seal-ec"
    kyso_env.kyso(
        "pki",
        "issue",
        "seal",
        "--agency",
        "000.00.04.H41",
        "--key-type",
        "p256",
        "--key-ref",
        uri,
        env={**kyso_env.env, **token},
    )
    with open_key(uri, pkcs11=ACCESS) as signing:
        spki = signing.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        raw = asyncio.run(signing.signer.async_sign_raw(b"data", "sha256"))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    public = serialization.load_der_public_key(spki)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(raw, b"data", ec.ECDSA(hashes.SHA256()))


def test_the_pin_and_module_come_from_the_settings_never_from_the_environment(
    token: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """certs reads no environment: ``KYSO_PKCS11_PIN`` and ``KYSO_PKCS11_MODULE`` reach a key
    through kyso/config.py's settings (the CLI tests above use them), never by ``open_key``
    looking at ``os.environ``; and the PIN is never shown with the settings."""
    from kyso.config import Settings

    monkeypatch.setenv("KYSO_PKCS11_PIN", PIN)
    monkeypatch.setenv("KYSO_PKCS11_MODULE", "/nowhere/libpkcs11.so")
    with pytest.raises(HsmError, match="no PIN for pkcs11:token=kyso-test;object=nothing"):
        open_key("pkcs11:token=kyso-test;object=nothing")
    settings = Settings.load()
    assert settings.pkcs11 == Pkcs11Access("/nowhere/libpkcs11.so", PIN)
    with pytest.raises(HsmError, match=r"module /nowhere/libpkcs11\.so not found"):
        open_key("pkcs11:token=kyso-test;object=nothing", pkcs11=settings.pkcs11)
    assert PIN not in repr(settings)
