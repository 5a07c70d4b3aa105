"""What the relay trusts when it verifies packages, PDFs, statuses and its own audit tokens.

The relay runs next to the PKI: revocation comes from the PKI's current CRLs, handed to the
validator in process (no HTTP round trip to itself, no OCSP fetch on the hot path). The CRLs
are re-read at most every few seconds; the relay also checks each signer's certificate record
in the database, so a revocation takes effect at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko_certvalidator import ValidationContext

from certs.aio import run_sync
from certs.keystore import parsed_in_full
from certs.layout import ISSUING_CA, ROOT_CA, PkiLayout
from certs.truststore import load_certificates
from signer.cades import check_timestamp
from signer.checkcache import CertificateCheckCache
from signer.policy import ValidationPolicy


@dataclass(frozen=True)
class LocalRevocationPolicy(ValidationPolicy):
    """A policy whose validation contexts always hold the given CRLs."""

    local_crls: tuple[asn1_crl.CertificateList, ...] = ()

    def validation_context(
        self,
        crls: tuple[asn1_crl.CertificateList, ...] = (),
        ocsps: tuple[asn1_ocsp.OCSPResponse, ...] = (),
    ) -> ValidationContext:
        return super().validation_context(crls=(*crls, *self.local_crls), ocsps=ocsps)


class Trust:
    """Trust roots plus a cached view of the PKI's CRLs."""

    def __init__(
        self,
        roots: tuple[x509.Certificate, ...],
        intermediates: tuple[x509.Certificate, ...],
        crl_source: Callable[[], list[bytes]],
        ttl: float = 10.0,
    ) -> None:
        self.roots = roots
        self.intermediates = intermediates
        self.crl_source = crl_source
        self.ttl = ttl
        self._cached: tuple[float, tuple[asn1_crl.CertificateList, ...]] | None = None
        self._policy: LocalRevocationPolicy | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_layout(
        cls, layout: PkiLayout, crl_source: Callable[[], list[bytes]] | None = None
    ) -> Trust:
        roots = tuple(load_certificates(layout.ca_certificate(ROOT_CA)))
        intermediates = tuple(load_certificates(layout.ca_certificate(ISSUING_CA)))

        def from_files() -> list[bytes]:
            return [
                layout.crl(name).read_bytes()
                for name in (ROOT_CA, ISSUING_CA)
                if layout.crl(name).is_file()
            ]

        return cls(roots, intermediates, crl_source or from_files)

    def crls(self) -> tuple[asn1_crl.CertificateList, ...]:
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
        # Shared by every thread's validations until the next reload: parsed in full.
        loaded = tuple(
            parsed_in_full(asn1_crl.CertificateList.load(der)) for der in self.crl_source()
        )
        with self._lock:
            self._cached = (now, loaded)
        return loaded

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def policy(self) -> ValidationPolicy:
        """An offline policy holding the current CRLs (one object per CRL generation, so that
        what it derives from the certificates is computed once)."""
        crls = self.crls()
        with self._lock:
            if self._policy is not None and self._policy.local_crls is crls:
                return self._policy
        policy = LocalRevocationPolicy(
            trust_roots=self.roots,
            offline=True,
            extra_certs=self.intermediates,
            local_crls=crls,
            checks=CertificateCheckCache(),
        )
        with self._lock:
            self._policy = policy
        return policy

    def check_token(self, token: bytes, digest: bytes) -> str | None:
        """None if ``token`` is a trusted RFC 3161 token over the SHA-256 ``digest``."""

        def imprint(algorithm: str) -> bytes:
            return digest if algorithm == "sha256" else b""

        result: Any = run_sync(check_timestamp(token, imprint, self.policy()))
        return None if result.usable else str(result.detail)


def trust_for_pki(directory: Path) -> Trust:
    """Trust as a command-line tool sees it: the PKI directory's root and CRL files."""
    return Trust.from_layout(PkiLayout(directory))
