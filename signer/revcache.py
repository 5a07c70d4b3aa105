"""Revocation answers reused between validations, within their validity.

A verifier checking many documents from the same agencies would otherwise fetch the same OCSP
response and CRL for every document. :class:`RevocationCache` wraps certvalidator's fetchers:
an answer fetched once is served again until its nextUpdate, then fetched anew. Each
validation context still reports only the answers it actually used.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.fetchers.api import CRLFetcher, Fetchers, OCSPFetcher

from certs.keystore import parsed_in_full

# How long an answer that names no nextUpdate is reused.
DEFAULT_REUSE = dt.timedelta(minutes=5)
Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ocsp_expiry(response: asn1_ocsp.OCSPResponse, now: dt.datetime) -> dt.datetime:
    try:
        basic = response["response_bytes"]["response"].parsed
        updates = [s["next_update"].native for s in basic["tbs_response_data"]["responses"]]
    except (KeyError, TypeError, ValueError):
        return now  # unusable: do not keep
    known = [u for u in updates if u is not None]
    return min(known) if known else now + DEFAULT_REUSE


def _crls_expiry(crls: Iterable[asn1_crl.CertificateList], now: dt.datetime) -> dt.datetime:
    updates = [c["tbs_cert_list"]["next_update"].native for c in crls]
    known = [u for u in updates if u is not None]
    return min(known) if known else now + DEFAULT_REUSE


def _ocsp_key(cert: Any) -> tuple[bytes, int] | None:
    if not isinstance(cert, asn1_x509.Certificate):
        return None  # attribute certificates: not cached
    return cert.issuer.dump(), cert.serial_number


def _crl_key(cert: Any) -> tuple[bytes, tuple[str, ...]] | None:
    if not isinstance(cert, asn1_x509.Certificate):
        return None
    urls = tuple(sorted(str(dp.url) for dp in cert.crl_distribution_points if dp.url))
    return cert.issuer.dump(), urls


class RevocationCache:
    """Thread-safe OCSP and CRL answers shared by every validation that uses this cache."""

    def __init__(self, clock: Clock = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ocsp: dict[tuple[bytes, int], tuple[asn1_ocsp.OCSPResponse, dt.datetime]] = {}
        self._crl: dict[
            tuple[bytes, tuple[str, ...]], tuple[list[asn1_crl.CertificateList], dt.datetime]
        ] = {}

    def fetchers(self, online: Fetchers) -> Fetchers:
        """Fetchers that answer from the cache first and fall back to ``online``."""
        return Fetchers(
            ocsp_fetcher=_CachedOcspFetcher(online.ocsp_fetcher, self),
            crl_fetcher=_CachedCrlFetcher(online.crl_fetcher, self),
            cert_fetcher=online.cert_fetcher,
        )

    def ocsp(self, cert: Any) -> asn1_ocsp.OCSPResponse | None:
        key = _ocsp_key(cert)
        with self._lock:
            hit = self._ocsp.get(key) if key else None
            if hit and hit[1] > self._clock():
                return hit[0]
            return None

    def keep_ocsp(self, cert: Any, response: asn1_ocsp.OCSPResponse) -> None:
        key = _ocsp_key(cert)
        now = self._clock()
        expiry = _ocsp_expiry(response, now)
        if key and expiry > now:
            parsed_in_full(response)  # other threads' validations will read it
            with self._lock:
                self._ocsp[key] = (response, expiry)

    def crls(self, cert: Any) -> list[asn1_crl.CertificateList] | None:
        key = _crl_key(cert)
        with self._lock:
            hit = self._crl.get(key) if key else None
            if hit and hit[1] > self._clock():
                return hit[0]
            return None

    def keep_crls(self, cert: Any, crls: list[asn1_crl.CertificateList]) -> None:
        key = _crl_key(cert)
        now = self._clock()
        expiry = _crls_expiry(crls, now)
        if key and crls and expiry > now:
            for crl in crls:
                parsed_in_full(crl)  # other threads' validations will read them
            with self._lock:
                self._crl[key] = (crls, expiry)


class _CachedOcspFetcher(OCSPFetcher):
    def __init__(self, online: OCSPFetcher, cache: RevocationCache) -> None:
        self._online = online
        self._cache = cache
        self._used: list[asn1_ocsp.OCSPResponse] = []

    def _use(self, response: asn1_ocsp.OCSPResponse) -> asn1_ocsp.OCSPResponse:
        if all(response is not r for r in self._used):
            self._used.append(response)
        return response

    async def fetch(self, cert: Any, authority: Any) -> asn1_ocsp.OCSPResponse:
        response = await self._online.fetch(cert, authority)
        self._cache.keep_ocsp(cert, response)
        return self._use(response)

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return list(self._used)

    def fetched_responses_for_cert(self, cert: Any) -> Iterable[asn1_ocsp.OCSPResponse]:
        hit = self._cache.ocsp(cert)
        return [self._use(hit)] if hit is not None else []


class _CachedCrlFetcher(CRLFetcher):
    def __init__(self, online: CRLFetcher, cache: RevocationCache) -> None:
        self._online = online
        self._cache = cache
        self._used: list[asn1_crl.CertificateList] = []

    def _use(self, crls: Iterable[asn1_crl.CertificateList]) -> list[asn1_crl.CertificateList]:
        result = list(crls)
        for crl in result:
            if all(crl is not c for c in self._used):
                self._used.append(crl)
        return result

    async def fetch(
        self, cert: Any, *, use_deltas: Any = None
    ) -> Iterable[asn1_crl.CertificateList]:
        crls = list(await self._online.fetch(cert, use_deltas=use_deltas))
        self._cache.keep_crls(cert, crls)
        return self._use(crls)

    def fetched_crls(self) -> Iterable[asn1_crl.CertificateList]:
        return list(self._used)

    def fetched_crls_for_cert(self, cert: Any) -> Iterable[asn1_crl.CertificateList]:
        hit = self._cache.crls(cert)
        if hit is None:
            raise KeyError("not fetched yet")  # certvalidator's signal to fetch
        return self._use(hit)
