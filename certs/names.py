"""Distinguished names with Vietnamese text.

Every attribute but the country is encoded as UTF8String, as RFC 5280 asks, so names such as
``CN=Nguyễn Văn An, O=UBND tỉnh Nghệ An`` survive every tool that reads them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import InvalidName

# RFC 5280 upper bounds (ub-common-name etc.).
_MAX_LEN = 64


@dataclass(frozen=True)
class SubjectSpec:
    """What goes into a subject name; empty fields are left out."""

    common_name: str
    organization: str = ""
    organizational_unit: str = ""
    title: str = ""
    province: str = ""
    locality: str = ""
    agency_code: str = ""
    country: str = "VN"

    def to_name(self) -> x509.Name:
        """Return the x509 name, most significant attribute first (C, ST, L, O, OU, CN)."""
        parts = [
            (NameOID.COUNTRY_NAME, self.country),
            (NameOID.STATE_OR_PROVINCE_NAME, self.province),
            (NameOID.LOCALITY_NAME, self.locality),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.TITLE, self.title),
            # The agency's identifier code (QCVN 102:2016) travels as the UID attribute.
            (NameOID.USER_ID, self.agency_code),
            (NameOID.COMMON_NAME, self.common_name),
        ]
        if not self.common_name.strip():
            raise InvalidName("the common name (CN) must not be empty")
        attributes = []
        for oid, value in parts:
            if not value:
                continue
            value = unicodedata.normalize("NFC", value.strip())
            if len(value) > _MAX_LEN:
                raise InvalidName(f"{oid._name} is longer than {_MAX_LEN} characters: {value!r}")
            attributes.append(x509.NameAttribute(oid, value))
        return x509.Name(attributes)


def common_name(name: x509.Name) -> str:
    """The first CN of ``name``, or its RFC 4514 string when it has none."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def agency_code(name: x509.Name) -> str | None:
    """The agency identifier carried in the UID attribute, if any."""
    values = name.get_attributes_for_oid(NameOID.USER_ID)
    return str(values[0].value) if values else None
