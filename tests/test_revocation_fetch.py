"""Online revocation of certificates Kyso did not issue (certs/revocation_*), against a foreign
CA built with ``openssl`` (tests/foreignca.py): its OCSP answered by ``openssl ocsp`` running
as a responder, its CRL served over HTTP.

Loopback is refused by the default egress policy; these tests allow it the way an
administrator would, with KYSO_REVOCATION_ALLOW (through kyso.config.Settings).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from certs.aio import run_sync
from certs.egress import EgressPolicy, EgressRefused, InvalidEgressRule, check_destination
from certs.revocation_certvalidator import KysoFetcherBackend
from certs.revocation_check import (
    RevocationGood,
    RevocationRevoked,
    RevocationUnavailable,
    RevocationUnknown,
    check_path,
    check_revocation,
)
from certs.revocation_evidence import InvalidEvidence, verify_crl
from certs.revocation_fetch import (
    FetchBounds,
    FetchFailed,
    HostSlots,
    RevocationFetcher,
    ValidityCache,
)
from certs.truststore import TrustSet
from kyso.config import Settings
from kyso.errors import InvalidRequest

from .foreignca import ForeignCA, foreign_ca

LOOPBACK_ALLOWED = {"KYSO_REVOCATION_ALLOW": "*, 127.0.0.0/8"}


def policy(env: dict[str, str]) -> EgressPolicy:
    """The revocation egress policy an administrator configures with ``env``."""
    return Settings.load(data="var", env=env).revocation_allow


def fetcher(**bounds: object) -> RevocationFetcher:
    return RevocationFetcher(policy(LOOPBACK_ALLOWED), FetchBounds(**bounds))  # type: ignore[arg-type]


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[ForeignCA]:
    with foreign_ca(tmp_path / "foreign-ca", alice="Nguyen Van An") as made:
        yield made


def check(ca: ForeignCA, using: RevocationFetcher | None = None) -> object:
    return check_revocation(ca.certificate("alice"), ca.issuing, using or fetcher())


def test_a_good_certificate_is_good_by_ocsp(ca: ForeignCA) -> None:
    result = check(ca)
    assert isinstance(result, RevocationGood), result
    assert (result.source, result.url) == ("ocsp", ca.ocsp_url)
    assert result.next_update is not None and result.next_update > result.this_update


def test_a_revoked_certificate_is_revoked_by_ocsp(ca: ForeignCA) -> None:
    ca.revoke("alice", "keyCompromise")
    ca.restart_ocsp()
    result = check(ca)
    assert isinstance(result, RevocationRevoked), result
    assert (result.source, result.reason) == ("ocsp", "key_compromise")
    assert result.revoked_at <= dt.datetime.now(dt.UTC)


def test_without_the_ocsp_responder_the_crl_answers(ca: ForeignCA) -> None:
    ca.stop_ocsp()
    result = check(ca)
    assert isinstance(result, RevocationGood) and result.source == "crl", result
    assert result.url == ca.crl_url

    ca.revoke("alice", "cessationOfOperation")
    result = check(ca)  # a new fetcher: the good CRL above is in the other one's cache
    assert isinstance(result, RevocationRevoked) and result.source == "crl", result
    assert result.reason == "cessation_of_operation"


def test_a_certificate_the_responder_does_not_know_is_asked_of_the_crl(ca: ForeignCA) -> None:
    bob = ca.issue_unrecorded("bob", "Tran Thi Binh")  # not in the CA's index
    result = check_revocation(bob, ca.issuing, fetcher())
    assert isinstance(result, RevocationGood) and result.source == "crl", result
    ca.stop_crl()
    result = check_revocation(bob, ca.issuing, fetcher())
    assert isinstance(result, RevocationUnknown) and "does not know" in result.detail, result


def test_with_both_stopped_revocation_is_unavailable_not_revoked(ca: ForeignCA) -> None:
    ca.revoke("alice")
    ca.stop()
    result = check(ca)
    assert isinstance(result, RevocationUnavailable), result
    assert [p.split(":")[0] for p in result.problems] == ["OCSP", "CRL"]


def test_an_answer_is_kept_until_its_next_update(ca: ForeignCA) -> None:
    shared = fetcher()
    assert isinstance(check(ca, shared), RevocationGood)
    ca.revoke("alice")
    ca.stop()  # nothing to ask: the answer comes from the cache, still valid
    result = check(ca, shared)
    assert isinstance(result, RevocationGood) and result.source == "ocsp", result

    later = RevocationFetcher(
        shared.policy, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61)
    )
    later.ocsp_cache = shared.ocsp_cache  # past nextUpdate: the entry is dropped, not used
    assert isinstance(check(ca, later), RevocationUnavailable)


def test_an_answer_without_next_update_is_never_kept(ca: ForeignCA) -> None:
    ca.restart_ocsp(next_update_minutes=None)
    ca.stop_crl()
    shared = fetcher()
    result = check(ca, shared)
    assert isinstance(result, RevocationGood) and result.next_update is None, result
    assert len(shared.ocsp_cache) == 0
    ca.stop_ocsp()
    assert isinstance(check(ca, shared), RevocationUnavailable)


def test_stale_answers_are_not_relied_on(ca: ForeignCA) -> None:
    """Two days on, the responder's answer (nextUpdate in an hour) and the CRL (a day) are
    both out of date for the checker's clock."""
    late = RevocationFetcher(
        policy(LOOPBACK_ALLOWED), clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    )
    result = check(ca, late)
    assert isinstance(result, RevocationUnavailable), result
    assert all("expired at nextUpdate" in p for p in result.problems), result.problems


def test_a_forged_crl_is_not_relied_on(ca: ForeignCA, tmp_path: Path) -> None:
    """A CRL signed by another CA (same name, other key) is refused, never read."""
    other = ForeignCA.create(tmp_path / "impostor")
    other.revoke("ocsp")
    forged = (other.directory / "issuing.crl").read_bytes()
    with pytest.raises(InvalidEvidence, match="signature does not verify"):
        verify_crl(forged, ca.issuing, dt.datetime.now(dt.UTC))
    (ca.directory / "issuing.crl").write_bytes(forged)
    ca.stop_ocsp()
    result = check(ca)
    assert isinstance(result, RevocationUnavailable), result
    assert "signature does not verify" in result.problems[-1]


def test_an_ocsp_answer_from_another_ca_is_not_relied_on(ca: ForeignCA, tmp_path: Path) -> None:
    """Asked with the wrong issuer, the genuine responder's answer verifies against nothing."""
    other = ForeignCA.create(tmp_path / "other")
    ca.stop_crl()
    result = check_revocation(ca.certificate("alice"), other.issuing, fetcher())
    assert isinstance(result, RevocationUnavailable), result


def test_the_ca_may_answer_for_itself(ca: ForeignCA) -> None:
    ca.restart_ocsp(signer="issuing")
    result = check(ca)
    assert isinstance(result, RevocationGood) and result.source == "ocsp", result


def test_an_ocsp_answer_signed_by_a_key_not_delegated_is_not_relied_on(ca: ForeignCA) -> None:
    """Alice's certificate is issued by the CA but not for OCSP signing (no id-kp-OCSPSigning):
    her answers about herself, even "good", are not evidence."""
    ca.restart_ocsp(signer="alice")
    ca.stop_crl()
    result = check(ca)
    assert isinstance(result, RevocationUnavailable), result
    assert "signed neither by the CA nor by its responder" in result.problems[0]


def test_answers_larger_than_the_bound_are_refused(ca: ForeignCA) -> None:
    ca.stop_ocsp()
    result = check(ca, fetcher(max_crl_bytes=64))
    assert isinstance(result, RevocationUnavailable), result
    assert "larger than 64 bytes" in result.problems[-1]


def test_a_certificate_without_sources_is_unknown(ca: ForeignCA) -> None:
    result = check_revocation(ca.issuing, ca.root, fetcher())
    assert isinstance(result, RevocationUnknown) and "names no OCSP" in result.detail


def test_each_certificate_of_a_path_is_checked_but_the_anchor(ca: ForeignCA) -> None:
    leaf, issuing = check_path([ca.certificate("alice"), ca.issuing, ca.root], fetcher())
    assert isinstance(leaf, RevocationGood) and isinstance(issuing, RevocationUnknown)


def test_fetches_to_one_host_are_bounded() -> None:
    slots = HostSlots(per_host=1, timeout=0.1)
    with slots.hold("ocsp.ca.vn"):
        with (
            pytest.raises(FetchFailed, match="1 fetches already under way"),
            slots.hold("ocsp.ca.vn"),
        ):
            pass
        with slots.hold("crl.ca.vn"):  # another host has slots of its own
            pass
    with slots.hold("ocsp.ca.vn"):  # released
        pass


def test_fetches_run_concurrently_up_to_the_bound() -> None:
    slots = HostSlots(per_host=2, timeout=5)
    inside, release = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with slots.hold("ocsp.ca.vn"):
            inside.wait()
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait(5)  # both hold a slot at once
    assert slots.busy() == {"ocsp.ca.vn": 2}
    release.set()
    for t in threads:
        t.join(5)
    assert slots.busy() == {}  # an idle host is forgotten


def test_the_cache_keeps_within_its_capacity_and_validity() -> None:
    now = dt.datetime.now(dt.UTC)
    cache: ValidityCache[bytes] = ValidityCache(10, len)
    cache.put("a", b"12345", now + dt.timedelta(hours=1))
    cache.put("b", b"123456", now + dt.timedelta(hours=1))  # over 10 bytes: "a" goes
    cache.put("c", b"x" * 11, now + dt.timedelta(hours=1))  # larger than the whole cache
    cache.put("d", b"1", None)  # no nextUpdate
    assert [cache.get(k, now) for k in "abcd"] == [None, b"123456", None, None]
    assert cache.get("b", now + dt.timedelta(hours=1)) is None and len(cache) == 0


# --- The egress policy ---------------------------------------------------------------------------


def test_loopback_urls_are_refused_unless_allowed(ca: ForeignCA) -> None:
    default = RevocationFetcher(policy({}))  # KYSO_REVOCATION_ALLOW unset: "*"
    result = check(ca, default)
    assert isinstance(result, RevocationUnavailable), result
    assert all("refused by the egress policy" in p for p in result.problems), result.problems
    assert "loopback" in result.problems[0]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://169.254.1.1/x"])
def test_metadata_and_link_local_urls_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(FetchFailed, match="refused by the egress policy"):
        fetcher().get(url, 1024)  # loopback allowed, these not
    allowed = policy({"KYSO_REVOCATION_ALLOW": "*, 169.254.169.254/32, 169.254.1.0/24"})
    assert check_destination(allowed, url).addresses  # allowed: nothing refuses it any more
    wide = policy({"KYSO_REVOCATION_ALLOW": "*, 169.254.0.0/16"})
    if "169.254.169.254" in url:
        with pytest.raises(EgressRefused, match="metadata"):
            check_destination(wide, url)  # a metadata address must be listed by itself


def test_a_malformed_revocation_allow_list_stops_the_start() -> None:
    with pytest.raises(InvalidRequest, match="KYSO_REVOCATION_ALLOW"):
        policy({"KYSO_REVOCATION_ALLOW": "*, 10.1.2.3/8"})
    assert policy({}) == EgressPolicy(any_name=True)  # unset: any name, no special address


def test_the_any_name_entry_still_checks_addresses() -> None:
    anywhere = EgressPolicy.parse("*", any_name=True)
    assert anywhere.permits_name("ocsp.vnpt-ca.vn") and anywhere.any_name
    with pytest.raises(InvalidEgressRule):
        EgressPolicy.parse("*")  # a push endpoint's host must be listed
    with pytest.raises(InvalidRequest, match="KYSO_PUSH_ALLOW"):
        Settings.load(data="var", env={"KYSO_PUSH_ALLOW": "*"})
    resolve = lambda host, port: [__import__("ipaddress").ip_address("10.0.0.8")]  # noqa: E731
    with pytest.raises(EgressRefused, match="private"):
        check_destination(anywhere, "http://ocsp.internal.vn/", resolve)
    assert not EgressPolicy.parse("ocsp.vnpt-ca.vn").permits_name("crl.vnpt-ca.vn")


# --- pyhanko-certvalidator through the same fetcher -----------------------------------------------


def _asn1(cert: object) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))  # type: ignore[attr-defined]


def _validate(ca: ForeignCA, using: RevocationFetcher) -> object:
    trust = TrustSet.of([ca.root, ca.issuing])
    context = ValidationContext(
        trust_roots=[_asn1(c) for c in trust.roots],
        other_certs=[_asn1(c) for c in trust.intermediates],
        allow_fetching=True,
        revocation_mode="hard-fail",
        fetcher_backend=KysoFetcherBackend(using, trust.issuer_of),
    )
    validator = CertificateValidator(_asn1(ca.certificate("alice")), validation_context=context)
    return run_sync(validator.async_validate_usage({"digital_signature"}))


def test_certvalidator_validates_a_foreign_chain_with_these_fetchers(ca: ForeignCA) -> None:
    path = _validate(ca, fetcher())
    assert path is not None
    ca.revoke("alice")
    ca.restart_ocsp()
    with pytest.raises(RevokedError):
        _validate(ca, fetcher())
    ca.stop_ocsp()  # from the CRL alone too
    with pytest.raises(RevokedError):
        _validate(ca, fetcher())
