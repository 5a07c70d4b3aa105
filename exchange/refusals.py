"""Requests refused before anyone was identified: counted, logged sparingly, limited per address.

A refused request without a valid principal is noise anyone on the network can make, as fast
as they like. Writing each one to the audit chain (one transaction under the relay's write
lock) let anonymous traffic queue behind, and slow down, every agency's send. So these
refusals are only counted, in this process's memory, by :class:`Refusal` reason:

* a Prometheus counter, ``kyso_relay_refused_requests_total{reason="…"}``;
* a warning at most once every ``every`` seconds, the first refusal at once and then a
  summary of the refusals since the last line (reasons, counts, addresses; never a header);
* per client address, at most ``per_minute`` refusals answered as such in a sliding minute:
  beyond it a failing request is answered with :class:`TooManyRefusals` (429, Retry-After).

A request that authenticates is never held back: behind a TLS terminator every client has the
terminator's address, and one misbehaving client must not lock the agencies out. Refusals of a
known principal (sender mismatch, routing…) are still chained by :mod:`exchange.relay`.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from .errors import Refusal, TooManyRefusals

log = logging.getLogger(__name__)

# The classic text format (0.0.4): every Prometheus server and agent reads it.
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LOG_EVERY = 60.0


class Limiter(Protocol):
    """A sliding-window limiter (kyso.tokens.RequestLimiter is one)."""

    def take(self, key: str, limit: int) -> int:
        """Count one event for ``key``: 0 if allowed, else the seconds to wait (not counted)."""
        ...


def client_key(address: str | None) -> str:
    """What one client is, for the limiter: its IPv4 address, or its IPv6 /64 (one host gets a
    whole /64 and could otherwise take a fresh address for every request)."""
    if not address:
        return "unknown"
    try:
        peer = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(peer, ipaddress.IPv6Address):
        if peer.ipv4_mapped is not None:
            return str(peer.ipv4_mapped)
        return str(ipaddress.IPv6Network((peer, 64), strict=False))
    return str(peer)


class RefusalLog:
    """At most one warning per ``every`` seconds about refused requests, never with secrets."""

    def __init__(
        self,
        logger: logging.Logger = log,
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._reasons: collections.Counter[str] = collections.Counter()
        self._clients: collections.Counter[str] = collections.Counter()
        self._last: float | None = None

    def note(self, reason: Refusal, client: str) -> None:
        """Count one refusal; write the summary line if the last one is ``every`` seconds old."""
        now = self.clock()
        with self._lock:
            self._reasons[reason.value] += 1
            self._clients[client] += 1
            if self._last is not None and now - self._last < self.every:
                return
            since = None if self._last is None else now - self._last
            reasons, clients = self._reasons, self._clients
            self._reasons, self._clients = collections.Counter(), collections.Counter()
            self._last = now
        self.logger.warning(summary(reasons, clients, since, self.every))


def summary(
    reasons: collections.Counter[str],
    clients: collections.Counter[str],
    since: float | None,
    every: float,
) -> str:
    """One line: how many refusals, why, from how many clients and the busiest one."""
    total = sum(reasons.values())
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    busiest, most = clients.most_common(1)[0]
    when = "" if since is None else f" in the last {since:.0f} s"
    line = (
        f"relay refused {total} unauthenticated request{'s' if total != 1 else ''}{when} "
        f"({why}) from {len(clients)} client{'s' if len(clients) != 1 else ''}, "
        f"most from {busiest} ({most})"
    )
    if since is None:
        line += f"; further refusals are summarised at most every {every:.0f} s"
    return line


class Refusals:
    """Counts, logs and limits the requests refused before a principal was known."""

    def __init__(
        self, limiter: Limiter, per_minute: int, refusal_log: RefusalLog | None = None
    ) -> None:
        self.limiter = limiter
        self.per_minute = per_minute
        self.log = refusal_log or RefusalLog()
        self.registry = CollectorRegistry(auto_describe=True)
        self._counter = Counter(
            "kyso_relay_refused_requests",
            "Relay requests refused before a principal was identified (not in the audit log)",
            ["reason"],
            registry=self.registry,
        )
        for reason in Refusal:  # every series exists from the start, at 0
            self._counter.labels(reason.value)

    def refuse(self, reason: Refusal, address: str | None) -> None:
        """Count a refusal from ``address``; raise :class:`TooManyRefusals` instead when the
        address already had ``per_minute`` refusals in the last minute."""
        client = client_key(address)
        wait = self.limiter.take(f"relay-refused:{client}", self.per_minute)
        if wait:
            self._count(Refusal.RATE_LIMITED, client)
            raise TooManyRefusals(
                f"more than {self.per_minute} requests a minute from your address failed "
                f"authentication: retry in {wait} s",
                wait,
            )
        self._count(reason, client)

    def exposition(self) -> bytes:
        """The counters in Prometheus' text format."""
        return generate_latest(self.registry)

    def _count(self, reason: Refusal, client: str) -> None:
        self._counter.labels(reason.value).inc()
        self.log.note(reason, client)
