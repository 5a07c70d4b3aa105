"""signer.checkcache: only clean passes are kept, as copies, and never past their time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from signer.cades import CertificateCheck
from signer.checkcache import CertificateCheckCache
from signer.report import SubIndication

from .conftest import self_signed_certificate

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
