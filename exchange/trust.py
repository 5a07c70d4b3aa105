"""What the relay trusts when it verifies packages, PDFs, statuses and its own audit tokens.

The roots and intermediates are the trust store's (:meth:`certs.trust_anchors.TrustAnchorStore
.trust_set`, re-read every few seconds): Kyso's own CA is one entry among the licensed CAs an
administrator added, not a special case.

Revocation is checked two ways:

- Kyso's own certificates against its current CRLs, handed to the validator in process: their
  CRL URLs are answered from memory and their OCSP URL is never asked (no HTTP round trip to
  itself, no OCSP signing on the hot path). The CRLs are re-read at most every few seconds; the
  relay also checks each Kyso-issued signer's certificate record in the database, so a
  revocation takes effect at once.
- Foreign certificates online, OCSP first then the CRL, through
  :class:`~certs.revocation_certvalidator.KysoFetcherBackend`: the egress policy, bounds and
  cache of the process's :class:`~certs.revocation_fetch.RevocationFetcher`. Without a fetcher
  (a command-line tool reading the PKI directory) validation is offline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import OCSPFetchError

from certs.aio import run_sync
from certs.keystore import parsed_in_full
from certs.layout import ISSUING_CA, ROOT_CA, PkiLayout
from certs.profiles import Endpoints
from certs.revocation_certvalidator import KysoFetcherBackend
from certs.revocation_fetch import RevocationFetcher
from certs.trust_anchors import local_pki_trust_set
from certs.truststore import TrustSet
from signer.cades import check_timestamp
from signer.checkcache import CertificateCheckCache
from signer.policy import ValidationPolicy

# URL of one of Kyso's CRLs -> its DER, as the PKI publishes it now.
CrlSource = Callable[[], Mapping[str, bytes]]


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


@dataclass(frozen=True)
class _Generation:
    """What one policy is made of: the trust set and Kyso's CRLs, read at the same moment."""

    anchors: TrustSet
    crl_ders: Mapping[str, bytes]
    crls: tuple[asn1_crl.CertificateList, ...]


class Trust:
    """The trust store's anchors, a cached view of Kyso's CRLs, and online revocation for the
    rest (see the module's docstring).

    ``anchors`` is asked at most every ``ttl`` seconds; ``own_ocsp`` is Kyso's OCSP URL, never
    asked (its CRLs answer); ``fetcher``: online revocation for foreign certificates (None:
    offline).
    """

    def __init__(
        self,
        anchors: Callable[[], TrustSet],
        crl_source: CrlSource,
        own_ocsp: str | None = None,
        fetcher: RevocationFetcher | None = None,
        ttl: float = 10.0,
    ) -> None:
        self.anchors = anchors
        self.crl_source = crl_source
        self.own_ocsp = own_ocsp
        self.fetcher = fetcher
        self.ttl = ttl
        self._cached: tuple[float, _Generation] | None = None
        self._policy: LocalRevocationPolicy | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_layout(
        cls,
        layout: PkiLayout,
        anchors: Callable[[], TrustSet] | None = None,
        fetcher: RevocationFetcher | None = None,
    ) -> Trust:
        """Kyso's CRL files of ``layout``; trusting ``anchors`` (by default Kyso's CA alone)."""
        endpoints = Endpoints(str(layout.read_manifest()["base_url"]))
        local = local_pki_trust_set(layout)

        def from_files() -> dict[str, bytes]:
            return {
                endpoints.crl(name): layout.crl(name).read_bytes()
                for name in (ROOT_CA, ISSUING_CA)
                if layout.crl(name).is_file()
            }

        return cls(anchors or (lambda: local), from_files, endpoints.ocsp, fetcher)

    def _generation(self) -> _Generation:
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
        ders = dict(self.crl_source())
        # Shared by every thread's validations until the next reload: parsed in full.
        loaded = tuple(parsed_in_full(asn1_crl.CertificateList.load(d)) for d in ders.values())
        generation = _Generation(self.anchors(), ders, loaded)
        with self._lock:
            self._cached = (now, generation)
        return generation

    def crls(self) -> tuple[asn1_crl.CertificateList, ...]:
        """Kyso's current CRLs, parsed."""
        return self._generation().crls

    def trust_set(self) -> TrustSet:
        """The trust store as the relay sees it now."""
        return self._generation().anchors

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        """The trust-store entry that issued ``certificate`` (how a fetched CRL is verified)."""
        return self.trust_set().issuer_of(certificate)

    def invalidate(self) -> None:
        """Re-read the trust store and the CRLs at the next validation."""
        with self._lock:
            self._cached = None

    def _answer(self, crl_ders: Mapping[str, bytes]) -> Callable[[str, bytes | None], Any]:
        def answer(url: str, body: bytes | None) -> bytes | None:
            if body is None and url in crl_ders:
                return crl_ders[url]
            if url == self.own_ocsp:
                # A failed OCSP request makes certvalidator read the CRL, answered above.
                raise OCSPFetchError("Kyso's own certificates are checked against its CRLs")
            return None

        return answer

    def policy(self) -> ValidationPolicy:
        """The policy of the current trust set and CRLs (one object per generation, so that
        what it derives from the certificates is computed once)."""
        generation = self._generation()
        with self._lock:
            if self._policy is not None and self._policy.local_crls is generation.crls:
                return self._policy
        backend = KysoFetcherBackend(self.fetcher, self.issuer_of) if self.fetcher else None
        policy = LocalRevocationPolicy(
            generation.anchors.roots,
            extra_certs=generation.anchors.intermediates,
            anchors=generation.anchors,
            offline=backend is None,
            local=self._answer(generation.crl_ders),
            fetcher_backend=backend,
            local_crls=generation.crls,
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


def trust_for_pki(
    directory: Path,
    anchors: Callable[[], TrustSet] | None = None,
    fetcher: RevocationFetcher | None = None,
) -> Trust:
    """Trust as a command-line tool sees it: the PKI directory's CA and CRL files, or the
    given trust store with online revocation (see :meth:`Trust.from_layout`)."""
    return Trust.from_layout(PkiLayout(directory), anchors, fetcher)
