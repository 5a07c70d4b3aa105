"""pyhanko-certvalidator fetchers over :class:`~certs.revocation_fetch.RevocationFetcher`.

The signature verifiers validate foreign chains with pyHanko's ``ValidationContext``. Given
``fetcher_backend=KysoFetcherBackend(fetcher)``, every OCSP and CRL request it makes goes
through Kyso's egress policy, bounds and cache instead of pyHanko's own HTTP client; issuer
certificates are not fetched from AIA URLs at all (they come from the trust store and from the
signature). certvalidator still verifies what it is handed, as it does for its own fetchers.

A fetch that fails raises certvalidator's ``OCSPFetchError`` / ``CRLFetchError``, which it
treats as missing revocation information (soft- or hard-fail, as the context says).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, TypeAlias

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator.authority import Authority, AuthorityWithCert
from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    OCSPFetcher,
)

from .revocation_evidence import InvalidEvidence, load_crl
from .revocation_fetch import RevocationFetcher, RevocationFetchError, crl_urls

IssuerLookup = Callable[[x509.Certificate], x509.Certificate | None]
Subject: TypeAlias = Any  # asn1crypto certificate or attribute certificate (untyped)


def _key(cert: Subject) -> Any:
    return cert.issuer_serial


def _crypto(cert: Subject) -> x509.Certificate:
    if not isinstance(cert, asn1_x509.Certificate):
        raise RevocationFetchError("attribute certificates are not checked online")
    return x509.load_der_x509_certificate(cert.dump())


class KysoOCSPFetcher(OCSPFetcher):
    """OCSP through :meth:`RevocationFetcher.ocsp` (verified, cached)."""

    def __init__(self, fetcher: RevocationFetcher) -> None:
        self.fetcher = fetcher
        self._results: dict[Any, asn1_ocsp.OCSPResponse] = {}

    async def fetch(self, cert: Subject, authority: Authority) -> asn1_ocsp.OCSPResponse:
        if not isinstance(authority, AuthorityWithCert):
            raise OCSPFetchError("the issuer's certificate is not known")
        issuer = x509.load_der_x509_certificate(authority.certificate.dump())
        try:
            fetched = await asyncio.to_thread(self.fetcher.ocsp, _crypto(cert), issuer)
        except RevocationFetchError as exc:
            raise OCSPFetchError(str(exc)) from exc
        response = asn1_ocsp.OCSPResponse.load(fetched.der)
        self._results[_key(cert)] = response
        return response

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return list(self._results.values())

    def fetched_responses_for_cert(self, cert: Subject) -> Iterable[asn1_ocsp.OCSPResponse]:
        found = self._results.get(_key(cert))
        return [found] if found is not None else []


class KysoCRLFetcher(CRLFetcher):
    """CRLs through the fetcher: verified and cached when ``issuers`` knows the certificate's
    issuer (a trust-store entry), else fetched within the same bounds and handed over for
    certvalidator to verify (not cached: nothing vouches for them yet)."""

    def __init__(self, fetcher: RevocationFetcher, issuers: IssuerLookup | None = None) -> None:
        self.fetcher, self.issuers = fetcher, issuers
        self._results: dict[Any, list[asn1_crl.CertificateList]] = {}

    async def fetch(
        self, cert: Subject, *, use_deltas: bool | None = None
    ) -> Iterable[asn1_crl.CertificateList]:
        try:
            ders = await asyncio.to_thread(self._fetch, _crypto(cert))
        except (RevocationFetchError, InvalidEvidence) as exc:
            raise CRLFetchError(str(exc)) from exc
        crls = [asn1_crl.CertificateList.load(der) for der in ders]
        self._results[_key(cert)] = crls
        return crls

    def _fetch(self, certificate: x509.Certificate) -> list[bytes]:
        issuer = self.issuers(certificate) if self.issuers else None
        if issuer is not None:
            return [self.fetcher.crl(certificate, issuer).der]
        limit = self.fetcher.bounds.max_crl_bytes
        ders = [self.fetcher.get(url, limit, kind="pkix-crl") for url in crl_urls(certificate)]
        return [_der(load_crl(data)) for data in ders]

    def fetched_crls(self) -> Iterable[asn1_crl.CertificateList]:
        return [c for crls in self._results.values() for c in crls]

    def fetched_crls_for_cert(self, cert: Subject) -> Iterable[asn1_crl.CertificateList]:
        return self._results[_key(cert)]


def _der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


class NoCertificateFetcher(CertificateFetcher):
    """Issuers are never fetched from URLs in certificates: the trust store provides them."""

    async def _nothing(self) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return
        yield  # an async generator that yields nothing

    def fetch_cert_issuers(self, cert: Subject) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return self._nothing()

    def fetch_crl_issuers(
        self, certificate_list: Any
    ) -> AsyncGenerator[asn1_x509.Certificate, None]:
        return self._nothing()

    def fetched_certs(self) -> Iterable[asn1_x509.Certificate]:
        return []


class KysoFetcherBackend(FetcherBackend):
    """``ValidationContext(fetcher_backend=KysoFetcherBackend(fetcher), allow_fetching=True)``."""

    def __init__(self, fetcher: RevocationFetcher, issuers: IssuerLookup | None = None) -> None:
        self.fetcher, self.issuers = fetcher, issuers

    def get_fetchers(self) -> Fetchers:
        return Fetchers(
            ocsp_fetcher=KysoOCSPFetcher(self.fetcher),
            crl_fetcher=KysoCRLFetcher(self.fetcher, self.issuers),
            cert_fetcher=NoCertificateFetcher(),
        )
