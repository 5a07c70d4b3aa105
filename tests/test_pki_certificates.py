"""The demo PKI's certificates, as OpenSSL (a tool nobody here wrote) sees them."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from .conftest import PASSPHRASE, KysoEnv


def openssl(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, errors="replace", **kwargs
    )


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_issued_certificate_verifies_with_openssl(kyso_env: KysoEnv) -> None:
    leaves = sorted((kyso_env.pki / "certs").glob("*.pem"))
    names = {leaf.stem for leaf in leaves}
    assert {"tsa", "ocsp", "relay", "person-nguyen-van-an"} <= names
    assert len([n for n in names if n.startswith("seal-")]) >= 13  # one per demo agency
    for leaf in [kyso_env.issuing, *leaves]:
        result = openssl(
            "verify", "-CAfile", str(kyso_env.root), "-untrusted", str(kyso_env.issuing), str(leaf)
        )
        assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stderr


def test_names_carry_vietnamese_diacritics(kyso_env: KysoEnv) -> None:
    person = load(kyso_env.cert("person-nguyen-van-an"))
    cn = person.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
    assert cn.value == "Nguyễn Văn An"
    assert cn._type.name == "UTF8String"
    assert person.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "UBND tỉnh Nghệ An"
    )
    assert person.subject.get_attributes_for_oid(NameOID.STATE_OR_PROVINCE_NAME)[0].value == (
        "Nghệ An"
    )
    text = openssl(
        "x509",
        "-in",
        str(kyso_env.cert("seal-000.01.21.H41")),
        "-noout",
        "-subject",
        "-nameopt",
        "utf8,sep_comma_plus",
    ).stdout
    assert "CN=UBND phường Hưng Dũng" in text and "C=VN" in text and "UID=000.01.21.H41" in text


def test_service_certificates_have_their_profiles(kyso_env: KysoEnv) -> None:
    tsa = load(kyso_env.cert("tsa")).extensions.get_extension_for_oid(
        ExtensionOID.EXTENDED_KEY_USAGE
    )
    assert tsa.critical and list(tsa.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    responder = load(kyso_env.cert("ocsp"))
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.OCSP_SIGNING in eku
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    relay = load(kyso_env.cert("relay"))
    san = relay.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("name", ["seal-000.00.00.H41", "person-tran-thi-binh", "tsa"])
def test_end_entities_point_at_the_revocation_services(kyso_env: KysoEnv, name: str) -> None:
    certificate = load(kyso_env.cert(name))
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = {d.access_method._name: d.access_location.value for d in aia}
    assert urls["OCSP"] == f"{kyso_env.url}/pki/ocsp"
    assert urls["caIssuers"] == f"{kyso_env.url}/pki/ca/issuing.crt"
    crl_dp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert crl_dp[0].full_name[0].value == f"{kyso_env.url}/pki/crl/issuing.crl"


def test_keys_are_encrypted_at_rest(kyso_env: KysoEnv) -> None:
    key_file = kyso_env.pki / "keys" / "seal-000.00.00.H41.p12"
    assert key_file.stat().st_mode & 0o077 == 0
    wrong = openssl("pkcs12", "-in", str(key_file), "-nodes", "-passin", "pass:wrong")
    assert wrong.returncode != 0
    right = openssl("pkcs12", "-in", str(key_file), "-nodes", "-passin", f"pass:{PASSPHRASE}")
    assert right.returncode == 0 and "PRIVATE KEY" in right.stdout
    assert b"PRIVATE KEY" not in key_file.read_bytes()
    # The bundle uses PBES2 with AES-256, not the legacy RC2/3DES PKCS#12 ciphers.
    info = openssl(
        "pkcs12", "-in", str(key_file), "-info", "-noout", "-passin", f"pass:{PASSPHRASE}"
    )
    assert "AES-256-CBC" in info.stderr + info.stdout
