"""signer.checkcache: only clean passes are kept, as copies, and never past their time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from certs.truststore import load_certificates
from signer.checkcache import CertificateCheck, CertificateCheckCache
from signer.pdf_verify import verify_pdf
from signer.policy import ValidationPolicy
from signer.report import SubIndication

from .conftest import Server, self_signed_certificate
from .pdftools import sample, sign_with

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def certificate(tmp_path: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(self_signed_certificate(tmp_path, name).read_bytes())


def test_a_pass_is_kept_as_a_copy_until_its_time(tmp_path: Path) -> None:
    clock = Clock()
    cache = CertificateCheckCache(ttl=dt.timedelta(minutes=5), clock=clock)
    leaf = certificate(tmp_path, "Seal")
    clock.now = leaf.not_valid_before_utc + dt.timedelta(minutes=1)
    key = cache.key(leaf, [])
    cache.keep(key, CertificateCheck(None, None, [leaf]))
    kept = cache.get(key)
    assert kept is not None and kept.chain == [leaf] and kept.sub_indication is None
    kept.chain.append(leaf)  # the caller's copy, not the cache's
    assert cache.get(key).chain == [leaf]  # type: ignore[union-attr]
    clock.now += dt.timedelta(minutes=5)
    assert cache.get(key) is None


def test_failures_are_not_kept_and_expiry_bounds_a_pass(tmp_path: Path) -> None:
    clock = Clock()
    cache = CertificateCheckCache(ttl=dt.timedelta(days=30), clock=clock)
    leaf = certificate(tmp_path, "Seal")  # valid for one day
    clock.now = leaf.not_valid_before_utc
    failed = cache.key(leaf, [])
    cache.keep(failed, CertificateCheck(SubIndication.TRY_LATER, "no CRL", [leaf]))
    assert cache.get(failed) is None
    other = certificate(tmp_path, "Other")
    assert cache.key(leaf, [other]) != cache.key(leaf, [])
    cache.keep(cache.key(leaf, [other]), CertificateCheck(None, None, [leaf]))
    clock.now = leaf.not_valid_after_utc
    assert cache.get(cache.key(leaf, [other])) is None  # not past the certificate's expiry


def test_a_pdf_signers_kept_verdict_gives_the_same_report(server: Server, tmp_path: Path) -> None:
    """The second document of a signer is checked for integrity by pyHanko, its path and
    revocation come from the kept verdict: the report reads the same."""
    env = server.env
    roots = tuple(load_certificates(env.root))
    checks = CertificateCheckCache()
    first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
    for output in (first, second):
        sign_with(env, sample(tmp_path), output, "person-nguyen-van-an")
    assert not verify_pdf(second, ValidationPolicy(roots, offline=True)).passed  # no CRL at hand
    full = verify_pdf(first, ValidationPolicy(roots, checks=checks))
    # Offline, only the verdict kept from the first document can pass the second one.
    fast = verify_pdf(second, ValidationPolicy(roots, offline=True, checks=checks))
    assert full.passed and fast.passed
    a, b = full.signatures[0], fast.signatures[0]
    assert (b.chain, b.revocation, b.level, b.coverage) == (
        a.chain,
        a.revocation,
        a.level,
        a.coverage,
    )
    assert b.signer == a.signer and len(b.chain) == 3 and b.revocation
    # Validating as of a given moment never uses a verdict kept for now.
    moment = ValidationPolicy(roots, offline=True, at=dt.datetime.now(dt.UTC), checks=checks)
    assert not verify_pdf(second, moment).passed
