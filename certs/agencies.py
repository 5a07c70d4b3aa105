"""Certificates for the agency directory: who a seal or an officer's certificate names.

An agency's seal certificate names the agency; an officer's personal certificate names the
person, their title and their agency. Both carry the agency's code (QCVN 102:2016), which is
how the relay ties a signature to the agency that sent it. The store names (``seal-<code>``,
``person-<slug>``) are where the key, certificate and image live in the PKI directory.
"""

from __future__ import annotations

from directory import Agency, Officer

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
