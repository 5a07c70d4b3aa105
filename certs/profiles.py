"""Certificate profiles: which extensions each kind of certificate carries.

Following RFC 5280 and the profiles CAs publish for document signing: CA certificates are
constrained by basicConstraints and keyUsage; every end-entity certificate points at the
revocation services (CRL distribution point, OCSP) and at its issuer (AIA caIssuers).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ObjectIdentifier,
)

# id-kp-documentSigning (RFC 9336).
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")


class Profile(StrEnum):
    """Kinds of certificate the CA issues; the value is stored with each issued certificate."""

    ROOT = "root"
    ISSUING = "issuing"
    TSA = "tsa"
    OCSP = "ocsp"
    SERVER = "server"
    SEAL = "seal"
    PERSON = "person"

    @property
    def validity_days(self) -> int:
        return _VALIDITY_DAYS[self]


_VALIDITY_DAYS = {
    Profile.ROOT: 20 * 365,
    Profile.ISSUING: 10 * 365,
    Profile.TSA: 6 * 365,
    Profile.OCSP: 2 * 365,
    Profile.SERVER: 2 * 365,
    Profile.SEAL: 3 * 365,
    Profile.PERSON: 3 * 365,
}


@dataclass(frozen=True)
class Endpoints:
    """Public URLs of the PKI services, written into the certificates."""

    base_url: str

    def crl(self, ca_name: str) -> str:
        return f"{self.base_url.rstrip('/')}/pki/crl/{ca_name}.crl"

    def ca_certificate(self, ca_name: str) -> str:
        return f"{self.base_url.rstrip('/')}/pki/ca/{ca_name}.crt"

    @property
    def ocsp(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/ocsp"

    @property
    def tsa(self) -> str:
        return f"{self.base_url.rstrip('/')}/pki/tsa"


Extension = tuple[x509.ExtensionType, bool]


def _key_usage(
    *,
    digital_signature: bool = False,
    non_repudiation: bool = False,
    ca: bool = False,
    key_encipherment: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _revocation_pointers(endpoints: Endpoints, issuer_name: str, ocsp: bool) -> list[Extension]:
    access = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(endpoints.ca_certificate(issuer_name)),
        )
    ]
    if ocsp:
        access.insert(
            0,
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(endpoints.ocsp)
            ),
        )
    crl_dp = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(endpoints.crl(issuer_name))],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return [
        (x509.AuthorityInformationAccess(access), False),
        (x509.CRLDistributionPoints([crl_dp]), False),
    ]


def extensions(
    profile: Profile,
    endpoints: Endpoints,
    issuer_name: str,
    *,
    dns_names: tuple[str, ...] = (),
) -> list[Extension]:
    """The profile-specific extensions (key identifiers are added by the CA)."""
    if profile is Profile.ROOT:
        return [
            (x509.BasicConstraints(ca=True, path_length=1), True),
            (_key_usage(ca=True, digital_signature=True), True),
        ]
    if profile is Profile.ISSUING:
        # The issuing CA is checked through the root's CRL only: no OCSP for CA certificates.
        return [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage(ca=True, digital_signature=True), True),
            *_revocation_pointers(endpoints, issuer_name, ocsp=False),
        ]
    end_entity: list[Extension] = [(x509.BasicConstraints(ca=False, path_length=None), True)]
    if profile is Profile.TSA:
        return [
            *end_entity,
            (_key_usage(digital_signature=True, non_repudiation=True), True),
            # RFC 3161 2.3: the TSA certificate has exactly this EKU, marked critical.
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
            *_revocation_pointers(endpoints, issuer_name, ocsp=True),
        ]
    if profile is Profile.OCSP:
        # RFC 6960 4.2.2.2.1: ocsp-nocheck, so clients do not ask the responder about itself.
        return [
            *end_entity,
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
            (x509.OCSPNoCheck(), False),
            *_revocation_pointers(endpoints, issuer_name, ocsp=False),
        ]
    if profile is Profile.SERVER:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        return [
            *end_entity,
            (_key_usage(digital_signature=True, key_encipherment=True), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
            (x509.SubjectAlternativeName(names), False),
            *_revocation_pointers(endpoints, issuer_name, ocsp=True),
        ]
    # Seals and personal certificates sign documents and may authenticate an agency system.
    return [
        *end_entity,
        (_key_usage(digital_signature=True, non_repudiation=True), True),
        (
            x509.ExtendedKeyUsage(
                [
                    DOCUMENT_SIGNING,
                    ExtendedKeyUsageOID.EMAIL_PROTECTION,
                    ExtendedKeyUsageOID.CLIENT_AUTH,
                ]
            ),
            False,
        ),
        *_revocation_pointers(endpoints, issuer_name, ocsp=True),
    ]
