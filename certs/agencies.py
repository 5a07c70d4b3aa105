"""Certificates for the agency directory: who a seal or an officer's certificate names.

An agency's seal certificate names the agency; an officer's personal certificate names the
person, their title and their agency. Both carry the agency's code (QCVN 102:2016), which is
how the relay ties a signature to the agency that sent it. The store names (``seal-<code>``,
``person-<slug>``) are where the key, certificate and image live in the PKI directory.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from directory import AGENCY_CODE, Agency, Officer
from directory.certificates import subject_values

from .layout import slug
from .names import SubjectSpec


def seal_subject(agency: Agency) -> SubjectSpec:
    """The subject of ``agency``'s seal certificate."""
    return SubjectSpec(
        common_name=agency.name,
        organization=agency.name,
        province=agency.province,
        agency_code=agency.code,
    )


def person_subject(officer: Officer, agency: Agency) -> SubjectSpec:
    """The subject of ``officer``'s personal certificate; ``agency`` is the one they sign for."""
    return SubjectSpec(
        common_name=officer.name,
        organization=agency.name,
        title=officer.title,
        province=agency.province,
        agency_code=agency.code,
    )


def seal_name(agency: Agency) -> str:
    """The PKI store name of ``agency``'s seal (key, certificate and image)."""
    return f"seal-{agency.code}"


def person_name(officer: Officer) -> str:
    """The PKI store name of ``officer``'s personal certificate."""
    return f"person-{slug(officer.name)}"


def agency_code_of(certificate: x509.Certificate, kyso_issuing_ca: x509.Certificate) -> str | None:
    """The agency code in ``certificate``'s ``UID``, if Kyso's issuing CA issued it.

    Kyso's CA writes the agency code there (:func:`seal_subject`); another CA's ``UID`` says
    something else (``MST:…``, ``CCCD:…``, :mod:`certs.subject`) or anything its subscriber
    asked for, so it names no agency: the directory's registrations do
    (:mod:`directory.certificates`). Issued means named as issuer *and* signed by
    ``kyso_issuing_ca``'s key: a foreign CA with the same name is not Kyso's.
    """
    if certificate.issuer != kyso_issuing_ca.subject:
        return None
    try:
        certificate.verify_directly_issued_by(kyso_issuing_ca)
    except (ValueError, TypeError, InvalidSignature):
        return None
    codes = [v for v in subject_values(certificate.subject, NameOID.USER_ID) if is_agency_code(v)]
    return codes[0] if codes else None


def is_agency_code(value: str) -> bool:
    """Whether ``value`` has the shape of an agency code (QCVN 102:2016)."""
    return AGENCY_CODE.match(value) is not None
