"""Which revocation evidence decides a PAdES verdict (ETSI EN 319 102-1, issue 2.7).

A B-LT or B-LTA signature is validated on the answers its document carries (the DSS) and
nothing is fetched; below B-LT, revocation is fetched fresh and the DSS decides nothing,
even when another signature of the same document put answers for the same chain there.
Here the network is gone: every OCSP, CRL or certificate fetch raises, and is counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    OCSPFetcher,
)

from certs.clock import utcnow
from certs.store import parse_serial
from signer.levels import Level
from signer.report import Indication, SignatureReport, SubIndication

from .conftest import KysoEnv
from .pdftools import sample, sign_with, verify_with

SEAL = "seal-000.00.21.H41"


class _Attempts:
    """How many fetches were tried (all refused)."""

    def __init__(self) -> None:
        self.count = 0


class _NoOcsp(OCSPFetcher):
    def __init__(self, attempts: _Attempts) -> None:
        self.attempts = attempts

    async def fetch(self, cert: Any, authority: Any) -> Any:
        self.attempts.count += 1
        raise OCSPFetchError("no network")

    def fetched_responses(self) -> Iterable[Any]:
        return ()

    def fetched_responses_for_cert(self, cert: Any) -> Iterable[Any]:
        return ()


class _NoCrl(CRLFetcher):
    def __init__(self, attempts: _Attempts) -> None:
        self.attempts = attempts

    async def fetch(self, cert: Any, *, use_deltas: Any = None) -> Any:
        self.attempts.count += 1
        raise CRLFetchError("no network")

    def fetched_crls(self) -> Iterable[Any]:
        return ()

    def fetched_crls_for_cert(self, cert: Any) -> Iterable[Any]:
        raise KeyError(cert)  # nothing fetched yet: certvalidator then calls fetch


class _NoCertificates(CertificateFetcher):
    def fetch_cert_issuers(self, cert: Any) -> Any:
        raise NotImplementedError

    def fetch_crl_issuers(self, certificate_list: Any) -> Any:
        raise NotImplementedError

    def fetched_certs(self) -> Iterable[Any]:
        return ()


class NoNetwork(FetcherBackend):
    """A fetcher backend with no network behind it."""

    def __init__(self) -> None:
        self.attempts = _Attempts()

    def get_fetchers(self) -> Fetchers:
        return Fetchers(_NoOcsp(self.attempts), _NoCrl(self.attempts), _NoCertificates())


def verify_without_network(
    env: KysoEnv, path: Path, at: dt.datetime | None = None
) -> tuple[list[SignatureReport], int]:
    """The verdicts online (fetching allowed) as of ``at`` (None: now), with every fetch
    refused; and the attempts."""
    backend = NoNetwork()
    report = verify_with(env, path, over_http=True, fetcher_backend=backend, at=at)
    return list(report.signatures), backend.attempts.count


def test_b_lt_is_validated_on_its_dss_with_nothing_fetched(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    signed = tmp_path / "b-lt.pdf"
    sign_with(kyso_env, sample(tmp_path), signed, SEAL, Level.B_LT)
    [signature], attempts = verify_without_network(kyso_env, signed)
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == Level.B_LT.value
    assert signature.revocation and all(e.source == "embedded" for e in signature.revocation)
    assert attempts == 0


def test_b_lt_is_validated_as_of_its_timestamp_once_its_answers_are_stale(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    """Two hours after signing, the DSS's OCSP answers (valid one hour) are stale at the
    verification time; the signature timestamp proves the signature existed when they were
    fresh, so the signature still passes on them, with nothing fetched."""
    signed = tmp_path / "b-lt.pdf"
    sign_with(kyso_env, sample(tmp_path), signed, SEAL, Level.B_LT)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    [signature], attempts = verify_without_network(kyso_env, signed, at=later)
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == Level.B_LT.value
    assert signature.timestamp_time is not None
    assert signature.revocation and all(e.source == "embedded" for e in signature.revocation)
    assert attempts == 0
    moment = signature.timestamp_time.isoformat()
    assert (
        f"validated as of the signature timestamp {moment} with the embedded revocation evidence"
        in signature.details
    )


def test_b_t_needs_fresh_revocation(kyso_env: KysoEnv, tmp_path: Path) -> None:
    signed = tmp_path / "b-t.pdf"
    sign_with(kyso_env, sample(tmp_path), signed, SEAL, Level.B_T)
    [signature], attempts = verify_without_network(kyso_env, signed)
    assert (signature.indication, signature.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    ), signature.details
    assert attempts > 0


def test_dss_of_a_later_b_lt_signature_does_not_decide_an_earlier_b_b_one(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    """The later B-LT signature puts answers for the same seal's chain into the DSS; the
    earlier B-B signature (no timestamp: no DSS can make it long-term) still needs fresh
    ones. (An earlier B-T signature whose chain the DSS covers is B-LT by PAdES's rules.)"""
    first, both = tmp_path / "b-b.pdf", tmp_path / "b-b+b-lt.pdf"
    sign_with(kyso_env, sample(tmp_path), first, SEAL, Level.B_B)
    sign_with(kyso_env, first, both, SEAL, Level.B_LT)
    (earlier, later), _ = verify_without_network(kyso_env, both)
    assert later.level == Level.B_LT.value and earlier.level == Level.B_B.value
    assert later.indication is Indication.TOTAL_PASSED, later.details
    assert all(e.source == "embedded" for e in later.revocation)
    assert (earlier.indication, earlier.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    ), earlier.details
    assert not any(e.source == "embedded" for e in earlier.revocation)


def test_b_lt_passes_online_too(kyso_env: KysoEnv, tmp_path: Path) -> None:
    """With the network (here the PKI answering in process) a B-LT signature passes as
    before."""
    signed = tmp_path / "b-lt.pdf"
    sign_with(kyso_env, sample(tmp_path), signed, SEAL, Level.B_LT)
    [signature] = verify_with(kyso_env, signed).signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == Level.B_LT.value


def test_b_lt_stands_on_its_dss_when_the_signer_is_revoked_after_its_timestamp(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    """Signed (and timestamped) three minutes ago, the signer revoked one minute ago, the
    file verified two hours later with the PKI answering: the timestamp proves the signature
    existed while the DSS showed the certificate good, and a later revocation does not undo
    that (ETSI EN 319 102-1), so the verdict rests on the DSS and nothing is fetched."""
    now = utcnow()
    signed_at, revoked_at = now - dt.timedelta(minutes=3), now - dt.timedelta(minutes=1)
    serial = kyso_env.issue_person("000.00.21.H41", "Lê Văn Tâm", "Chuyên viên")
    signed = tmp_path / "b-lt.pdf"
    sign_with(
        kyso_env, sample(tmp_path), signed, "person-le-van-tam", Level.B_LT, clock=lambda: signed_at
    )
    kyso_env.pki_services.pki.store.revoke(
        parse_serial(serial), x509.ReasonFlags.key_compromise, revoked_at
    )
    [signature] = verify_with(kyso_env, signed, at=now + dt.timedelta(hours=2)).signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.revocation and all(e.source == "embedded" for e in signature.revocation)
