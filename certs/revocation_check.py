"""Is a foreign certificate revoked? OCSP first, then the CRL; a typed, frozen answer.

:func:`check_revocation` never raises for a network problem and never calls one "revoked":

* :class:`RevocationGood` — a verified, fresh answer says the certificate is not revoked;
* :class:`RevocationRevoked` — one says it is revoked (when, why);
* :class:`RevocationUnknown` — the responder does not know the certificate and no CRL answers,
  or the certificate names no revocation source at all;
* :class:`RevocationUnavailable` — no answer could be obtained or relied on (responders down,
  egress refused, stale or badly signed answers). The relay holds a package "verification
  pending" on it and asks again later; it is not a verdict on the certificate.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import ocsp

from .revocation_evidence import crl_reason
from .revocation_fetch import (
    FetchFailed,
    NoRevocationSource,
    RevocationFetcher,
    crl_urls,
    ocsp_urls,
)


@dataclass(frozen=True)
class RevocationGood:
    source: str  # "ocsp" or "crl"
    url: str
    this_update: dt.datetime
    next_update: dt.datetime | None


@dataclass(frozen=True)
class RevocationRevoked:
    source: str
    url: str
    revoked_at: dt.datetime
    reason: str | None  # the RFC 5280 reason's name (keyCompromise …), if given


@dataclass(frozen=True)
class RevocationUnknown:
    detail: str


@dataclass(frozen=True)
class RevocationUnavailable:
    """No usable answer: ``problems`` says, source by source, why."""

    problems: tuple[str, ...]


RevocationResult = RevocationGood | RevocationRevoked | RevocationUnknown | RevocationUnavailable


def _from_ocsp(url: str, single: ocsp.OCSPSingleResponse) -> RevocationResult | None:
    """The verdict of an OCSP answer; None for ``unknown`` (then the CRL is asked)."""
    if single.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return RevocationGood("ocsp", url, single.this_update_utc, single.next_update_utc)
    if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        at = single.revocation_time_utc
        assert at is not None  # a revoked status always carries its time
        return RevocationRevoked("ocsp", url, at, reason.name if reason else None)
    return None


def _from_crl(url: str, crl: x509.CertificateRevocationList, serial: int) -> RevocationResult:
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    if entry is None:
        return RevocationGood("crl", url, crl.last_update_utc, crl.next_update_utc)
    return RevocationRevoked("crl", url, entry.revocation_date_utc, crl_reason(entry))


def check_revocation(
    certificate: x509.Certificate, issuer: x509.Certificate, fetcher: RevocationFetcher
) -> RevocationResult:
    """The revocation status of ``certificate`` (issued by ``issuer``, whose key must have
    signed it: the caller has built the chain) from OCSP, else from its CRL."""
    if not ocsp_urls(certificate) and not crl_urls(certificate):
        return RevocationUnknown("the certificate names no OCSP responder and no CRL")
    problems: list[str] = []
    unknown: str | None = None
    try:
        answer = fetcher.ocsp(certificate, issuer)
        verdict = _from_ocsp(answer.url, answer.single)
        if verdict is not None:
            return verdict
        unknown = f"{answer.url} does not know the certificate"
    except NoRevocationSource:
        pass  # then the CRL alone says
    except FetchFailed as exc:
        problems.append(f"OCSP: {exc}")
    try:
        fetched = fetcher.crl(certificate, issuer)
        return _from_crl(fetched.url, fetched.crl, certificate.serial_number)
    except NoRevocationSource:
        pass
    except FetchFailed as exc:
        problems.append(f"CRL: {exc}")
    if unknown is not None:
        return RevocationUnknown(unknown)
    return RevocationUnavailable(tuple(problems))


def check_path(
    path: Sequence[x509.Certificate], fetcher: RevocationFetcher
) -> tuple[RevocationResult, ...]:
    """:func:`check_revocation` of each certificate of a validated ``path`` (the signer's first,
    then its issuer, up to the trust anchor, which is not checked: nothing is above it)."""
    return tuple(
        check_revocation(certificate, issuer, fetcher)
        for certificate, issuer in itertools.pairwise(path)
    )
