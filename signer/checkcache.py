"""Signer-certificate verdicts reused between validations under one policy.

An agency signs every package with the same seal certificate; validating its path and its
revocation status again for each document is most of the cost of verifying a signature
(certvalidator, two CRLs). :class:`CertificateCheckCache` keeps a *passing* verdict for a
certificate and its intermediates for a short time (never past a certificate's expiry).
Only passes are kept: a failure is recomputed, so its details always describe the document
at hand. A cache belongs to one :class:`~signer.policy.ValidationPolicy` whose revocation
sources do not change (the relay makes one per CRL generation), and is consulted only when
validating as of now. XAdES and CAdES signers are judged by
:func:`signer.cades.check_signer_certificate`, PDF signers by pyHanko
(:mod:`signer.pdf_verify`): each keeps its own verdicts.

The verdict itself (:class:`CertificateCheck`) is defined here, below both the policy that
holds a cache and the modules that judge certificates, so that none of them imports another
in a circle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .report import RevocationEvidence, SubIndication

Clock = Callable[[], dt.datetime]
CheckKey = tuple[str, bytes, tuple[bytes, ...]]

DEFAULT_TTL = dt.timedelta(minutes=5)
MAX_ENTRIES = 4096


@dataclass
class CertificateCheck:
    """The verdict on a signer's certificate: path to a trust root, revocation, usage."""

    sub_indication: SubIndication | None
    detail: str | None = None
    chain: list[x509.Certificate] = field(default_factory=list)  # signer first
    revocation: list[RevocationEvidence] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


class CertificateCheckCache:
    """Thread-safe passing verdicts, each kept for at most ``ttl``."""

    def __init__(self, ttl: dt.timedelta = DEFAULT_TTL, clock: Clock = _now) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[CheckKey, tuple[CertificateCheck, dt.datetime]] = {}

    @staticmethod
    def key(
        certificate: x509.Certificate,
        intermediates: Iterable[x509.Certificate],
        purpose: str = "signature",
    ) -> CheckKey:
        """What a verdict depends on besides the policy: who judged it (``purpose``: Kyso's
        own check, or pyHanko's for a PDF signature), the certificate and the ones offered
        to build its path."""
        offered = tuple(sorted(_fingerprint(c) for c in intermediates))
        return purpose, _fingerprint(certificate), offered

    def get(self, key: CheckKey) -> CertificateCheck | None:
        """A copy of the kept verdict, or None if there is none still valid."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is None or hit[1] <= self._clock():
            return None
        check = hit[0]
        return dataclasses.replace(
            check, chain=list(check.chain), revocation=list(check.revocation)
        )

    def keep(self, key: CheckKey, check: CertificateCheck) -> None:
        """Keep ``check`` if it passed, until ``ttl`` or the first expiry in its chain."""
        if check.sub_indication is not None or not check.chain:
            return
        now = self._clock()
        until = min([now + self._ttl] + [c.not_valid_after_utc for c in check.chain])
        if until <= now:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # a bound, not an LRU: agencies' seals refill it at once
            self._entries[key] = (check, until)
