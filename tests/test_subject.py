"""certs/subject.py: the subject attributes of Vietnamese certificates; certs/agencies.py: a UID
names an agency only in a certificate Kyso's issuing CA issued."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.agencies import agency_code_of
from certs.subject import SubjectInfo, split_identifier

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey = KEY,
    holder: ec.EllipticCurvePrivateKey = KEY,
) -> x509.Certificate:
    """``subject``'s certificate for ``holder``'s key, signed with ``key`` under ``issuer``."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(holder.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


GOV_CA = _name((NameOID.COUNTRY_NAME, "VN"), (NameOID.COMMON_NAME, "Cục Chứng thực số"))


def test_an_officers_certificate_of_the_government_ca() -> None:
    subject = _name(
        (NameOID.COUNTRY_NAME, "VN"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Nghệ An"),
        (NameOID.LOCALITY_NAME, "Thành phố Vinh"),
        (NameOID.ORGANIZATION_NAME, "UBND tỉnh Nghệ An"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Văn phòng UBND tỉnh"),
        (NameOID.TITLE, "Phó Chánh Văn phòng"),
        (NameOID.USER_ID, "CCCD:040085001234"),
        (NameOID.USER_ID, "CMND:186123456"),
        (NameOID.COMMON_NAME, "Nguyễn Thị Hương"),
    )
    info = SubjectInfo.of(_certificate(subject, GOV_CA))
    assert info == SubjectInfo(
        common_name="Nguyễn Thị Hương",
        organisation="UBND tỉnh Nghệ An",
        unit="Văn phòng UBND tỉnh",
        title="Phó Chánh Văn phòng",
        locality="Thành phố Vinh",
        province="Nghệ An",
        country="VN",
        citizen_id="040085001234",
        old_id_card="186123456",
        uids=("CCCD:040085001234", "CMND:186123456"),
    )
    assert info.to_dict()["title"] == "Phó Chánh Văn phòng"
    assert "tax_code" not in info.to_dict()


def test_an_organisations_seal_with_its_tax_code() -> None:
    subject = _name(
        (NameOID.COUNTRY_NAME, "VN"),
        (NameOID.USER_ID, "MST:2900325526"),
        (NameOID.ORGANIZATION_NAME, "Sở Y tế tỉnh Nghệ An"),
        (NameOID.COMMON_NAME, "Sở Y tế tỉnh Nghệ An"),
    )
    info = SubjectInfo.of(_certificate(subject, GOV_CA))
    assert (info.tax_code, info.organisation, info.citizen_id) == (
        "2900325526",
        "Sở Y tế tỉnh Nghệ An",
        "",
    )


def test_identifiers_in_serial_number_passports_and_other_uids() -> None:
    subject = _name(
        (NameOID.SERIAL_NUMBER, "HC:B1234567"),
        (NameOID.USER_ID, "MNS:1234567"),
        (NameOID.USER_ID, "nguyenvanan"),  # a UID that is no identifier: kept, not read
        (NameOID.COMMON_NAME, "Nguyễn Văn An"),
    )
    info = SubjectInfo.of_name(subject)
    assert (info.passport, info.budget_code, info.uids) == (
        "B1234567",
        "1234567",
        ("MNS:1234567", "nguyenvanan"),
    )
    assert split_identifier(" mst : 0101234567 ") == ("MST", "0101234567")
    assert split_identifier("XYZ:1") is None and split_identifier("MST:") is None
    assert SubjectInfo.of_name(x509.Name([])) == SubjectInfo()


def test_a_uid_names_an_agency_only_in_kysos_certificates() -> None:
    kyso_ca_key = ec.generate_private_key(ec.SECP256R1())
    kyso_name = _name((NameOID.COMMON_NAME, "Kyso Issuing CA"))
    kyso_ca = _certificate(kyso_name, kyso_name, kyso_ca_key, kyso_ca_key)
    seal = _name((NameOID.USER_ID, "000.00.00.H41"), (NameOID.COMMON_NAME, "UBND tỉnh Nghệ An"))
    assert agency_code_of(_certificate(seal, kyso_name, kyso_ca_key), kyso_ca) == "000.00.00.H41"
    # Another CA's certificate with the same UID: not an agency's, not even under the same name.
    assert agency_code_of(_certificate(seal, GOV_CA), kyso_ca) is None
    assert agency_code_of(_certificate(seal, kyso_name), kyso_ca) is None
    # Kyso's own certificate with a UID that is no agency code.
    other = _name((NameOID.USER_ID, "MST:0101234567"), (NameOID.COMMON_NAME, "x"))
    assert agency_code_of(_certificate(other, kyso_name, kyso_ca_key), kyso_ca) is None
