"""signer.localfetch: the process's own OCSP and CRL URLs are answered by a call, anything
else goes to the network fetchers, and a bad local answer is a fetch error, not a crash."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asn1crypto import crl as asn1_crl
from pyhanko_certvalidator import errors
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.api import CRLFetcher, Fetchers, OCSPFetcher

from certs.keystore import to_asn1
from certs.truststore import load_certificates
from signer.localfetch import local_fetchers

from .conftest import KysoEnv

SEAL = "seal-000.00.00.H41"


class Online(OCSPFetcher, CRLFetcher):
    """Network fetchers that record what they were asked instead of fetching."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def fetch(self, cert: Any, *args: Any, **kwargs: Any) -> Any:
        self.asked.append("ocsp" if args else "crl")
        raise errors.OCSPFetchError("offline")

    def fetched_responses(self) -> list[Any]:
        return []

    def fetched_responses_for_cert(self, cert: Any) -> list[Any]:
        return []

    def fetched_crls(self) -> list[Any]:
        return []

    def fetched_crls_for_cert(self, cert: Any) -> list[Any]:
        raise KeyError("not fetched")


def fetchers(online: Online, answer: Any) -> Fetchers:
    return local_fetchers(Fetchers(online, online, None), answer)  # type: ignore[arg-type]


def test_own_urls_answered_foreign_ones_fetched_bad_answers_refused(kyso_env: KysoEnv) -> None:
    [leaf] = load_certificates(kyso_env.cert(SEAL))
    [issuer] = load_certificates(kyso_env.issuing)
    cert, authority = to_asn1(leaf), AuthorityWithCert(to_asn1(issuer))
    crl_der = next((kyso_env.pki / "crl").glob("issuing*")).read_bytes()
    seen: list[tuple[str, bool]] = []

    def own(url: str, body: bytes | None) -> bytes | None:
        seen.append((url, body is None))
        return crl_der if body is None else b"not an OCSP response"

    online = Online()
    local = fetchers(online, own)
    crls = asyncio.run(local.crl_fetcher.fetch(cert))
    assert [type(c) for c in crls] == [asn1_crl.CertificateList]
    assert list(local.crl_fetcher.fetched_crls_for_cert(cert)) == crls
    with pytest.raises(errors.OCSPFetchError):
        asyncio.run(local.ocsp_fetcher.fetch(cert, authority))
    asked = {(url.split("/pki/")[1], get) for url, get in seen}
    assert asked == {("crl/issuing.crl", True), ("ocsp", False)} and online.asked == []

    foreign = fetchers(online, lambda url, body: None)
    with pytest.raises(errors.OCSPFetchError):
        asyncio.run(foreign.ocsp_fetcher.fetch(cert, authority))
    assert online.asked == ["ocsp"]
