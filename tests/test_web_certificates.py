"""The admin page of the certificates registered to agencies (/admin/certificates), over HTTP
in process: register and remove through the form, each audited as `kyso directory certificate`
is; refusals said on the page; admins only; CSRF required. The certificates are made here
with ``cryptography``, with Vietnamese subject attributes."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from directory.certificates import certificate_fingerprint

from .conftest import Demo
from .webtools import login

HEALTH = "000.00.02.H41"
PAGE = "/admin/certificates"


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def make_certificates(tax_code: str) -> tuple[x509.Certificate, x509.Certificate]:
    """A licensed CA's certificate and a seal certificate it issued, whose subject carries a
    tax code (MST), an organisation and a title in Vietnamese."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name((NameOID.COMMON_NAME, "CA Thử nghiệm Việt Nam"), (NameOID.COUNTRY_NAME, "VN"))
    ca = (
        x509.CertificateBuilder()
        .issuer_name(ca_name)
        .subject_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    subject = _name(
        (NameOID.USER_ID, f"MST:{tax_code}"),
        (NameOID.COMMON_NAME, "Sở Y tế tỉnh Nghệ An"),
        (NameOID.ORGANIZATION_NAME, "UBND tỉnh Nghệ An"),
        (NameOID.TITLE, "Giám đốc"),
        (NameOID.COUNTRY_NAME, "VN"),
    )
    seal = (
        x509.CertificateBuilder()
        .issuer_name(ca_name)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=180))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ca, seal


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def register(
    session: requests.Session, demo: Demo, data: bytes, agency: str = HEALTH, **fields: str
) -> requests.Response:
    return session.post(
        f"{demo.url}{PAGE}",
        data={"agency": agency, "role": "seal", **fields},
        files={"certificate": ("con-dau.pem", data)},
        timeout=10,
    )


def audit_events(demo: Demo, subject: str) -> list[dict]:
    return [e.to_dict() for e in demo.env.services.audit.events(limit=10_000, subject=subject)]


def test_an_admin_registers_and_removes_a_certificate(demo: Demo) -> None:
    _, seal = make_certificates("0101234567")
    admin = login(demo, "admin")
    page = admin.get(f"{demo.url}/admin", timeout=10).text
    assert f'href="{PAGE}"' in page  # linked from the admin navigation
    response = register(admin, demo, pem(seal), valid_until="2099-12-31")
    assert response.status_code == 200 and response.url.startswith(f"{demo.url}{PAGE}")
    registry = demo.env.services.agency_certificates
    found = registry.agency_of(seal)
    assert found is not None and (found.agency, found.role.value) == (HEALTH, "seal")
    assert found.valid_until == dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    row = response.text.split(f'id="registration-{found.id}"')[1].split("</tr>")[0]
    for text in ("Sở Y tế tỉnh Nghệ An", "MST: 0101234567", "UBND tỉnh Nghệ An", "Giám đốc",
                 "CA Thử nghiệm Việt Nam", certificate_fingerprint(seal)[:16], "2099-12-31",
                 "Con dấu cơ quan", "quản trị viên", HEALTH):  # fmt: skip
        assert text in row, text
    subject = f"agency-certificate:{found.id}"
    [added] = audit_events(demo, subject)
    assert (added["event"], added["actor"]) == ("admin", "web:admin")
    assert added["data"]["change"] == "agency-certificate-added"
    assert added["data"]["fingerprint"] == certificate_fingerprint(seal)

    english = admin.get(f"{demo.url}/lang/en?next={PAGE}", timeout=10).text
    assert "Tax code (MST): 0101234567" in english and "Agency seal" in english
    admin.get(f"{demo.url}/lang/vi", timeout=10)

    removed = admin.post(f"{demo.url}{PAGE}/{found.id}/remove", timeout=10)
    assert removed.status_code == 200 and f'id="registration-{found.id}"' not in removed.text
    assert registry.agency_of(seal) is None
    changes = [e["data"]["change"] for e in audit_events(demo, subject)]
    assert changes == ["agency-certificate-added", "agency-certificate-removed"]
    assert audit_events(demo, subject)[1]["actor"] == "web:admin"
    again = admin.post(f"{demo.url}{PAGE}/{found.id}/remove", timeout=10)
    assert again.status_code == 404 and "Không có đăng ký này" in again.text


@pytest.mark.parametrize(
    ("upload", "agency", "message"),
    [
        ("text", HEALTH, "Tệp không phải là một chứng thư số"),
        ("ca", HEALTH, "tổ chức chứng thực (CA)"),
        ("seal", "999.99.99.Z99", "Không có cơ quan mã 999.99.99.Z99 trong danh bạ."),
        ("big", HEALTH, "Tệp quá lớn"),
    ],
)
def test_refusals_are_said_on_the_page(demo: Demo, upload: str, agency: str, message: str) -> None:
    ca, seal = make_certificates("0109999999")
    data = {
        "text": "Quyết định số 1/QĐ-UBND".encode(),
        "ca": pem(ca),
        "seal": pem(seal),
        "big": b"-----BEGIN CERTIFICATE-----\n" + b"A" * 70_000,
    }[upload]
    admin = login(demo, "admin")
    response = register(admin, demo, data, agency)
    assert response.status_code == 422, response.text[:300]
    assert 'id="certificate-error"' in response.text and message in response.text
    assert demo.env.services.agency_certificates.agency_of(seal) is None


def test_a_certificate_registered_twice_is_refused(demo: Demo) -> None:
    _, seal = make_certificates("0107777777")
    admin = login(demo, "admin")
    der = seal.public_bytes(serialization.Encoding.DER)
    assert register(admin, demo, der).status_code == 200  # DER works as PEM does
    again = register(admin, demo, pem(seal), "000.00.00.H41")
    assert again.status_code == 422 and "Chứng thư số này đã được đăng ký." in again.text
    found = demo.env.services.agency_certificates.agency_of(seal)
    assert found is not None and found.agency == HEALTH


def test_only_admins_and_only_with_the_csrf_token(demo: Demo) -> None:
    _, seal = make_certificates("0105555555")
    clerk = login(demo, "lan")
    assert clerk.get(f"{demo.url}{PAGE}", timeout=10).status_code == 403
    assert register(clerk, demo, pem(seal)).status_code == 403
    assert f'href="{PAGE}"' not in clerk.get(f"{demo.url}/verify", timeout=10).text
    admin = login(demo, "admin")
    admin.headers.pop("X-CSRF-Token")
    refused = register(admin, demo, pem(seal))  # neither the form field nor the header
    assert refused.status_code == 403 and "csrf-failed" in refused.text
    assert demo.env.services.agency_certificates.agency_of(seal) is None
