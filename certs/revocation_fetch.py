"""OCSP responses and CRLs fetched online for certificates Kyso did not issue, bounded and cached.

The URLs come from the certificates (authorityInfoAccess, cRLDistributionPoints): someone else
wrote them, so every fetch goes through the administrator's egress policy
(:func:`certs.egress.fetch`: no loopback, link-local, private or metadata address unless
allowed), and is bounded in time (``timeout``: connection, each read and the whole body), in
size (``max_ocsp_bytes``, ``max_crl_bytes``) and in concurrency per host (``per_host``: a
slow responder cannot take every worker; a fetch that waits longer than ``timeout`` for its
turn fails).

An answer is kept until its nextUpdate, and only once it is verified (a forged answer on plain
HTTP must not block the genuine one); an answer without nextUpdate is never kept. OCSP is
asked with POST (RFC 6960 A.1), without a nonce, so that answers can be shared.

Failures raise :class:`RevocationFetchError`: :class:`NoRevocationSource` (the certificate
names no responder or CRL), :class:`FetchFailed` (network, HTTP, size, refused by the egress
policy) or :class:`~certs.revocation_evidence.InvalidEvidence` (what came back cannot be
relied on). :mod:`certs.revocation_check` turns them into a verdict.
"""

from __future__ import annotations

import datetime as dt
import http.client
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from .clock import utcnow
from .egress import EgressPolicy, EgressRefused, Resolver, fetch, parse_url, system_resolver
from .errors import PKIError
from .revocation_evidence import Freshness, InvalidEvidence, ocsp_request, verify_crl, verify_ocsp
from .truststore import fingerprint

V = TypeVar("V")


class RevocationFetchError(PKIError):
    """Base class: revocation information could not be obtained."""


class NoRevocationSource(RevocationFetchError):
    """The certificate names no OCSP responder (or no CRL distribution point) over HTTP."""


class FetchFailed(RevocationFetchError):
    """The responder or CRL server could not be reached, refused, answered an HTTP error, sent
    too much or too slowly, or its URL is refused by the egress policy."""


@dataclass(frozen=True)
class FetchBounds:
    """The limits of online revocation checks."""

    timeout: float = 10.0  # seconds: connection, each read, the whole body, a turn per host
    max_ocsp_bytes: int = 64 * 1024
    max_crl_bytes: int = 16 * 1024 * 1024
    per_host: int = 4  # fetches to one host at the same time
    ocsp_cache_entries: int = 4096
    crl_cache_bytes: int = 256 * 1024 * 1024
    freshness: Freshness = field(default_factory=Freshness)


@dataclass(frozen=True)
class FetchedOcsp:
    """A verified OCSP answer: where it came from, its DER, and the single response about the
    certificate asked for."""

    url: str
    der: bytes
    single: ocsp.OCSPSingleResponse


@dataclass(frozen=True)
class FetchedCrl:
    """A verified, fresh CRL of the certificate's issuer, and where it came from."""

    url: str
    der: bytes
    crl: x509.CertificateRevocationList


class ValidityCache(Generic[V]):
    """Values kept until a moment (their nextUpdate), within a ``capacity`` measured by
    ``weigh`` (one per entry unless told: a CRL weighs its bytes); the oldest go first.
    Thread-safe."""

    def __init__(self, capacity: int, weigh: Callable[[V], int] = lambda _value: 1) -> None:
        self.capacity, self.weigh = capacity, weigh
        self._entries: OrderedDict[object, tuple[V, dt.datetime, int]] = OrderedDict()
        self._load = 0
        self._lock = threading.Lock()

    def get(self, key: object, now: dt.datetime) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[1]:
                self._drop(key)
                return None
            return entry[0]

    def put(self, key: object, value: V, until: dt.datetime | None) -> None:
        """Keep ``value`` until ``until``; with no ``until`` (no nextUpdate), keep nothing."""
        weight = self.weigh(value)
        if until is None or weight > self.capacity:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (value, until, weight)
            self._load += weight
            while self._load > self.capacity:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: object) -> None:
        self._load -= self._entries.pop(key)[2]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class HostSlots:
    """At most ``per_host`` fetches to one host at a time; a caller waits at most ``timeout``.
    Only hosts with fetches under way are remembered (their names come from certificates)."""

    def __init__(self, per_host: int, timeout: float) -> None:
        self.per_host, self.timeout = per_host, timeout
        self._busy: dict[str, int] = {}
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, host: str) -> Iterator[None]:
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._busy.get(host, 0) < self.per_host, self.timeout
            ):
                raise FetchFailed(f"{host}: {self.per_host} fetches already under way")
            self._busy[host] = self._busy.get(host, 0) + 1
        try:
            yield
        finally:
            with self._changed:
                self._busy[host] -= 1
                if not self._busy[host]:
                    del self._busy[host]
                self._changed.notify_all()

    def busy(self) -> dict[str, int]:
        """The hosts with fetches under way, and how many."""
        with self._changed:
            return dict(self._busy)


def ocsp_urls(certificate: x509.Certificate) -> list[str]:
    """The http(s) OCSP responder URLs of ``certificate``'s authorityInfoAccess."""
    return _http_uris(
        d.access_location
        for d in _extension(certificate, x509.AuthorityInformationAccess)
        if d.access_method == AuthorityInformationAccessOID.OCSP
    )


def crl_urls(certificate: x509.Certificate) -> list[str]:
    """The http(s) URLs of ``certificate``'s CRL distribution points (full names only)."""
    return _http_uris(
        name
        for point in _extension(certificate, x509.CRLDistributionPoints)
        for name in point.full_name or ()
    )


def _extension(certificate: x509.Certificate, kind: type) -> list:
    try:
        return list(certificate.extensions.get_extension_for_class(kind).value)
    except x509.ExtensionNotFound:
        return []


def _http_uris(names: Iterator[x509.GeneralName]) -> list[str]:
    found = [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)]
    return [u for u in found if u.lower().startswith(("http://", "https://"))]


class RevocationFetcher:
    """Fetches, verifies and caches OCSP answers and CRLs through one egress ``policy``.

    One per process (it holds the cache and the per-host slots); thread-safe. ``clock`` is the
    time answers are checked against (tests move it).
    """

    def __init__(
        self,
        policy: EgressPolicy,
        bounds: FetchBounds = FetchBounds(),
        resolver: Resolver = system_resolver,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.policy, self.bounds, self.resolver, self.clock = policy, bounds, resolver, clock
        self.slots = HostSlots(bounds.per_host, bounds.timeout)
        self.ocsp_cache: ValidityCache[FetchedOcsp] = ValidityCache(bounds.ocsp_cache_entries)
        self.crl_cache: ValidityCache[FetchedCrl] = ValidityCache(
            bounds.crl_cache_bytes, lambda fetched: len(fetched.der)
        )

    def get(self, url: str, limit: int, body: bytes | None = None, kind: str = "") -> bytes:
        """The body of a 200 answer to GET (or POST of ``body``) at ``url``, within the bounds.

        Raises :class:`FetchFailed` for anything else, the egress policy's refusal included.
        """
        headers = {"Accept": f"application/{kind}"} if kind else {}
        if body is not None:
            headers["Content-Type"] = "application/ocsp-request"
        try:
            with self.slots.hold(parse_url(url).host):
                reply = fetch(
                    self.policy,
                    "GET" if body is None else "POST",
                    url,
                    body,
                    headers,
                    timeout=self.bounds.timeout,
                    max_body=limit,
                    resolver=self.resolver,
                )
        except EgressRefused as exc:
            raise FetchFailed(f"{url}: refused by the egress policy: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(f"{url}: {exc or type(exc).__name__}") from None
        if reply.status != 200:
            raise FetchFailed(f"{url} answered HTTP {reply.status}")
        if not reply.complete:
            raise FetchFailed(f"{url}: the answer is larger than {limit} bytes, or too slow")
        return reply.body

    def ocsp(self, certificate: x509.Certificate, issuer: x509.Certificate) -> FetchedOcsp:
        """A verified, fresh OCSP answer about ``certificate`` from the first of its responders
        that gives one (cached until its nextUpdate)."""
        urls = ocsp_urls(certificate)
        if not urls:
            raise NoRevocationSource("the certificate names no OCSP responder")
        key = (fingerprint(issuer), certificate.serial_number)
        now = self.clock()
        cached = self.ocsp_cache.get(key, now)
        if cached is not None:
            return cached
        request = ocsp_request(certificate, issuer).public_bytes(serialization.Encoding.DER)

        def answer(url: str) -> FetchedOcsp:
            der = self.get(url, self.bounds.max_ocsp_bytes, request, "ocsp-response")
            single = verify_ocsp(der, certificate, issuer, now, self.bounds.freshness)
            fetched = FetchedOcsp(url, der, single)
            self.ocsp_cache.put(key, fetched, single.next_update_utc)
            return fetched

        return _first_answer(urls, answer)

    def crl(self, certificate: x509.Certificate, issuer: x509.Certificate) -> FetchedCrl:
        """A verified, fresh CRL of ``issuer`` from the first of ``certificate``'s distribution
        points that gives one (cached until its nextUpdate)."""
        urls = crl_urls(certificate)
        if not urls:
            raise NoRevocationSource("the certificate names no CRL distribution point")
        now = self.clock()

        def answer(url: str) -> FetchedCrl:
            key = (url, fingerprint(issuer))
            cached = self.crl_cache.get(key, now)
            if cached is not None:
                return cached
            der = self.get(url, self.bounds.max_crl_bytes, kind="pkix-crl")
            crl = verify_crl(der, issuer, now, self.bounds.freshness)
            fetched = FetchedCrl(url, der, crl)
            self.crl_cache.put(key, fetched, crl.next_update_utc)
            return fetched

        return _first_answer(urls, answer)


def _first_answer(urls: list[str], answer: Callable[[str], V]) -> V:
    """The first of ``urls`` whose ``answer`` is had and verifies; else :class:`FetchFailed`
    naming what each gave (unreachable, or what came back could not be relied on: either way,
    no answer)."""
    problems: list[str] = []
    for url in urls:
        try:
            return answer(url)
        except InvalidEvidence as exc:
            problems.append(f"{url}: {exc}")
        except FetchFailed as exc:
            problems.append(str(exc))
    raise FetchFailed("; ".join(problems))
