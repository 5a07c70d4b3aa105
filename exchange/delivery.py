"""Push delivery and the relay's housekeeping, in one background thread.

An agency may register a push endpoint; the worker then POSTs each of its inbox items there
(JSON, signed with the agency's own credential secret so the receiver can check it came from
the relay) until the endpoint answers 2xx, which counts as the acknowledgement. Each POST goes
through the administrator's egress allow-list (:func:`pinned_poster`): a host that is not, or
no longer, allowed is not contacted, and a redirect is not followed. Failed
attempts are retried with exponential backoff and jitter (``base · 2^n``, capped, each delay
drawn between half and all of it); after ``dead_letter_after`` of failures the item becomes
a dead letter, listed for administrators and left in the pull inbox.

The same thread timestamps the audit log's head with the TSA every ``checkpoint_interval``,
and verifies again the packages held in "verification pending" (``verify_pending``, see
:mod:`exchange.pending`) when they are due.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certs.clock import utcnow
from certs.egress import EgressPolicy, Resolver, fetch, system_resolver

from . import audit as events
from . import views
from .auth import Authenticator
from .config import RelayConfig
from .mailbox import Mailbox
from .mailbox_store import DeliveryRecord

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)
BATCH = 50
# The endpoint's answer is not used beyond its status: read no more of it than this.
REPLY_LIMIT = 64 * 1024

# (url, body, headers, timeout) → HTTP status code; raises on failure (refused, network, HTTP).
Poster = Callable[[str, bytes, dict[str, str], float], int]


def pinned_poster(
    policy: EgressPolicy, resolver: Resolver = system_resolver, tls: ssl.SSLContext | None = None
) -> Poster:
    """The worker's poster: POST through ``policy`` with :func:`certs.egress.fetch`.

    At every attempt the endpoint's name is resolved and each address checked, and the
    connection goes to a checked address (so a name rebound to a forbidden address since
    registration is refused, :class:`certs.egress.EgressRefused`); a 3xx answer is returned
    as it is, a failed attempt like any non-2xx; ``timeout`` bounds the connection, each read
    and the answer; at most :data:`REPLY_LIMIT` bytes of the answer are read. ``tls``: the
    trust for https endpoints (by default the system's).
    """
    context = tls or ssl.create_default_context()

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        reply = fetch(
            policy,
            "POST",
            url,
            body,
            headers,
            timeout=timeout,
            max_body=REPLY_LIMIT,
            resolver=resolver,
            tls=context,
        )
        return reply.status

    return post


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The delay before retry number ``attempt`` (1, 2, …): exponential, capped, jittered."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def push_signature(secret: str, timestamp: str, body: bytes) -> str:
    message = f"kyso-push\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class PushResult:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


class PushWorker:
    """Pushes due deliveries; call :meth:`run_once` or :meth:`start` a thread."""

    def __init__(
        self,
        mailbox: Mailbox,
        authenticator: Authenticator,
        config: RelayConfig,
        poster: Poster,
        stamp: Callable[[bytes], bytes] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
        verify_pending: Callable[[], object] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.store = mailbox.store
        self.audit = mailbox.audit
        self.authenticator = authenticator
        self.config = config
        self.poster = poster
        self.stamp = stamp
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.verify_pending = verify_pending
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_checkpoint = time.monotonic()

    # -- one round --

    def run_once(self) -> PushResult:
        result = PushResult()
        now = self.clock()
        for delivery, url in self.store.due_pushes(now, BATCH):
            if not self.store.lease(delivery.id, now, now + LEASE):
                continue  # another worker has it
            self._attempt(delivery, url, result)
        return result

    def _attempt(self, delivery: DeliveryRecord, url: str, result: PushResult) -> None:
        attempts = delivery.attempts + 1
        try:
            body, headers = self._notification(delivery)
            status = self.poster(url, body, headers, self.config.push_timeout)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # any failure to deliver is retried, never fatal
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = self.clock()
        if error is None:
            with self.store.write() as conn:
                if self.store.mark_acked(conn, delivery.id, now, "push"):
                    self.mailbox.record_delivery(conn, delivery, "relay", "push", now)
            result.delivered += 1
            return
        if now - delivery.since >= self.config.dead_letter_after:
            with self.store.write() as conn:
                self.store.mark_dead(conn, delivery.id, now, attempts, error)
                self.audit.append(
                    conn,
                    events.DEAD_LETTER,
                    "relay",
                    delivery.message_id,
                    {
                        "delivery": delivery.id,
                        "agency": delivery.agency,
                        "attempts": attempts,
                        "error": error,
                    },
                    now,
                )
            result.dead += 1
            return
        delay = backoff(attempts, self.config.push_base_delay, self.config.push_max_delay, self.rng)
        self.store.schedule_retry(delivery.id, attempts, now + dt.timedelta(seconds=delay), error)
        result.retried += 1

    def _notification(self, delivery: DeliveryRecord) -> tuple[bytes, dict[str, str]]:
        item = views.inbox_item(self.mailbox.item(delivery))
        body = json.dumps(item, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Kyso-Delivery": str(delivery.id),
            "X-Kyso-Timestamp": timestamp,
        }
        key_id = self.authenticator.agency_key(delivery.agency)
        if key_id is not None:
            headers["X-Kyso-Credential"] = key_id
            headers["X-Kyso-Signature"] = push_signature(
                self.authenticator.secret(key_id), timestamp, body
            )
        return body, headers

    # -- housekeeping --

    def checkpoint_if_due(self, force: bool = False) -> Any:
        if self.stamp is None:
            return None
        if not force and time.monotonic() - self._last_checkpoint < self.config.checkpoint_interval:
            return None
        self._last_checkpoint = time.monotonic()
        return self.audit.checkpoint(self.stamp)

    # -- the thread --

    def start(self, interval: float = 0.5) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="kyso-push", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
                self.checkpoint_if_due()
                if self.verify_pending is not None:
                    self.verify_pending()
            except Exception:
                log.exception("push worker round failed")
                result = PushResult()
            if not (result.delivered or result.retried):
                self._stop.wait(interval)
