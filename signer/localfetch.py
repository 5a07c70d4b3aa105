"""OCSP and CRL answers from this process for the PKI it serves itself.

A server that validates signatures made under its own CA would otherwise fetch OCSP responses
and CRLs over HTTP from itself. With every worker thread busy validating, those requests queue
behind the very validations waiting for them and time out: valid documents come out
INDETERMINATE/TRY_LATER under load. :func:`local_fetchers` wraps certvalidator's fetchers so
that URLs the process answers itself are answered by a function call; every other URL goes to
the network as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem
from pyhanko_certvalidator import errors
from pyhanko_certvalidator.fetchers.api import CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    process_ocsp_response_data,
)
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

# (url, DER body of a POST or None for a GET) -> the response body, or None if the URL is not
# one this process answers.
LocalAnswers = Callable[[str, bytes | None], bytes | None]


def local_fetchers(online: Fetchers, answer: LocalAnswers) -> Fetchers:
    """Fetchers that ask ``answer`` first and fall back to ``online`` for foreign URLs."""
    return Fetchers(
        ocsp_fetcher=_LocalOcspFetcher(online.ocsp_fetcher, answer),
        crl_fetcher=_LocalCrlFetcher(online.crl_fetcher, answer),
        cert_fetcher=online.cert_fetcher,
    )


class _LocalOcspFetcher(OCSPFetcher):
    def __init__(self, online: OCSPFetcher, answer: LocalAnswers) -> None:
        self._online = online
        self._answer = answer
        self._fetched: list[tuple[Any, asn1_ocsp.OCSPResponse]] = []

    async def fetch(self, cert: Any, authority: Any) -> asn1_ocsp.OCSPResponse:
        request = format_ocsp_request(
            cert, authority, certid_hash_algo="sha256", request_nonces=True
        )
        for url in get_ocsp_urls(cert):
            data = self._answer(url, request.dump())
            if data is not None:
                response = process_ocsp_response_data(data, ocsp_request=request, ocsp_url=url)
                self._fetched.append((issuer_serial(cert), response))
                return response
        return await self._online.fetch(cert, authority)

    def fetched_responses(self) -> Iterable[asn1_ocsp.OCSPResponse]:
        return [r for _, r in self._fetched] + list(self._online.fetched_responses())

    def fetched_responses_for_cert(self, cert: Any) -> Iterable[asn1_ocsp.OCSPResponse]:
        wanted = issuer_serial(cert)
        mine = [r for key, r in self._fetched if key == wanted]
        return mine + list(self._online.fetched_responses_for_cert(cert))


class _LocalCrlFetcher(CRLFetcher):
    def __init__(self, online: CRLFetcher, answer: LocalAnswers) -> None:
        self._online = online
        self._answer = answer
        self._by_cert: dict[Any, list[asn1_crl.CertificateList]] = {}

    async def fetch(
        self, cert: Any, *, use_deltas: Any = None
    ) -> Iterable[asn1_crl.CertificateList]:
        key = issuer_serial(cert)
        if key in self._by_cert:
            return self._by_cert[key]
        urls = [
            url
            for point in get_relevant_crl_dps(cert, use_deltas=bool(use_deltas))
            for url in enumerate_delivery_point_urls(point)
        ]
        answers = [(url, self._answer(url, None)) for url in urls]
        if not answers or any(data is None for _, data in answers):
            return await self._online.fetch(cert, use_deltas=use_deltas)
        crls = [_load_crl(url, data) for url, data in answers if data is not None]
        self._by_cert[key] = crls
        return crls

    def fetched_crls(self) -> Iterable[asn1_crl.CertificateList]:
        mine = [c for crls in self._by_cert.values() for c in crls]
        return mine + list(self._online.fetched_crls())

    def fetched_crls_for_cert(self, cert: Any) -> Iterable[asn1_crl.CertificateList]:
        mine = self._by_cert.get(issuer_serial(cert))
        if mine is not None:
            return mine
        return self._online.fetched_crls_for_cert(cert)  # KeyError: not fetched yet


def _load_crl(url: str, data: bytes) -> asn1_crl.CertificateList:
    try:
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        crl: asn1_crl.CertificateList = asn1_crl.CertificateList.load(data)
    except ValueError as error:
        raise errors.CRLFetchError(f"unreadable CRL from {url}") from error
    return crl
