"""The subject attributes Vietnamese certificates carry, read into one value.

Licensed CAs (the government CA, VNPT-CA, Viettel-CA, BKAV-CA, FPT-CA…) identify the holder
in the ``UID`` attribute (0.9.2342.19200300.100.1.1), as ``PREFIX:number``:

- ``MST:`` the tax code (mã số thuế) of an organisation or a person;
- ``CCCD:`` the citizen identity card (căn cước công dân, 12 digits);
- ``CMND:`` the old identity card (chứng minh nhân dân, 9 or 12 digits);
- ``HC:`` a passport (hộ chiếu); ``MNS:`` a budget-unit code (mã quan hệ ngân sách);
- ``BHXH:`` a social-insurance number.

Some CAs put the same ``PREFIX:number`` in ``serialNumber`` (2.5.4.5) instead; both are read.
The organisation (O), its unit (OU), the holder's title (T, 2.5.4.12), the locality (L), the
province (ST) and the country (C) come as they are. Nothing here is trusted: these are what
the certificate says, for display and for registrations by subject
(:mod:`directory.certificates`); whose certificate it is, the directory says.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

# Identifier prefixes and the field of SubjectInfo each fills.
IDENTIFIER_PREFIXES = {
    "MST": "tax_code",
    "CCCD": "citizen_id",
    "CMND": "old_id_card",
    "HC": "passport",
    "MNS": "budget_code",
    "BHXH": "social_insurance",
}


def _values(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    return tuple(str(a.value).strip() for a in name.get_attributes_for_oid(oid))


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = _values(name, oid)
    return values[0] if values else ""


def split_identifier(value: str) -> tuple[str, str] | None:
    """``("MST", "0101234567")`` for ``MST:0101234567`` (any case, spaces around ``:``); None
    for a value that is not a known prefix and a number."""
    prefix, colon, number = value.partition(":")
    prefix, number = prefix.strip().upper(), number.strip()
    if not colon or prefix not in IDENTIFIER_PREFIXES or not number:
        return None
    return prefix, number


@dataclass(frozen=True)
class SubjectInfo:
    """What a certificate's subject says about its holder (empty: the attribute is absent)."""

    common_name: str = ""
    organisation: str = ""
    unit: str = ""
    title: str = ""
    locality: str = ""
    province: str = ""
    country: str = ""
    email: str = ""
    tax_code: str = ""
    citizen_id: str = ""
    old_id_card: str = ""
    passport: str = ""
    budget_code: str = ""
    social_insurance: str = ""
    uids: tuple[str, ...] = ()
    """Every UID value as written, identifiers or not (Kyso's own carry the agency code)."""

    @classmethod
    def of(cls, certificate: x509.Certificate) -> SubjectInfo:
        """Read ``certificate``'s subject."""
        return cls.of_name(certificate.subject)

    @classmethod
    def of_name(cls, name: x509.Name) -> SubjectInfo:
        """Read a distinguished name; the first of a repeated identifier wins."""
        uids = _values(name, NameOID.USER_ID)
        identifiers: dict[str, str] = {}
        for value in (*uids, *_values(name, NameOID.SERIAL_NUMBER)):
            found = split_identifier(value)
            if found is not None:
                identifiers.setdefault(IDENTIFIER_PREFIXES[found[0]], found[1])
        return cls(
            common_name=_first(name, NameOID.COMMON_NAME),
            organisation=_first(name, NameOID.ORGANIZATION_NAME),
            unit=_first(name, NameOID.ORGANIZATIONAL_UNIT_NAME),
            title=_first(name, NameOID.TITLE),
            locality=_first(name, NameOID.LOCALITY_NAME),
            province=_first(name, NameOID.STATE_OR_PROVINCE_NAME),
            country=_first(name, NameOID.COUNTRY_NAME),
            email=_first(name, NameOID.EMAIL_ADDRESS),
            uids=uids,
            **identifiers,
        )

    def to_dict(self) -> dict[str, object]:
        """The attributes present, for a JSON report (empty ones left out)."""
        fields = {k: v for k, v in self.__dict__.items() if k != "uids" and v}
        return {**fields, "uids": list(self.uids)} if self.uids else fields
