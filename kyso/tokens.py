"""API tokens for agency systems: bearer credentials of :mod:`exchange.identity`, each bound to
one agency and to the keys it may sign with.

A token may hold its agency's seal keys only (:data:`TOKEN_KEY_KINDS`): a personal signature
needs the officer in person, and a system calling the API is not him. Tokens made before this
rule may still list a personal key; it is refused when used (:func:`personal_key_refused`).

A token is ``kyso_`` + 32 random bytes (URL-safe base64), shown once when it is created. The
database keeps only its SHA-256 (the ``credentials`` table, kind ``bearer``). Every token has a
request rate (per minute), enforced by :class:`RequestLimiter` in the serving process. This
module is the shell's view of them (``kyso tokens``, the kyso errors); storing and checking
them is :class:`exchange.identity.Credentials`'s.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from exchange.errors import Unauthenticated
from exchange.identity import TOKEN_PREFIX as TOKEN_PREFIX
from exchange.identity import Credential, Credentials, Kind, Presented, Principal, UnknownCredential
from exchange.identity import digest as token_hash

from .errors import InvalidRequest, InvalidToken, NotFound, PersonalKeyNotAllowed, RateLimited
from .identities import Identities

DEFAULT_RATE = 120
# The certificate profiles (certs.profiles.Profile) a token may sign with.
TOKEN_KEY_KINDS = ("seal",)
BEARER = frozenset({Kind.BEARER})

__all__ = [
    "DEFAULT_RATE",
    "TOKEN_KEY_KINDS",
    "TOKEN_PREFIX",
    "ApiToken",
    "RequestLimiter",
    "TokenStore",
    "check_token_keys",
    "personal_key_refused",
    "token_hash",
]


def personal_key_refused(name: str, common_name: str) -> PersonalKeyNotAllowed:
    """The error for a token asking for (or being given) the personal key ``name``."""
    return PersonalKeyNotAllowed(
        f"key {name} is the personal key of {common_name}: personal signatures need the "
        "officer in person and cannot be made with an agency token (it holds seal keys only)"
    )


def check_token_keys(identities: Identities, agency: str, key_refs: list[str]) -> None:
    """Refuse to give a token of ``agency`` any key but that agency's seals.

    The kind is the profile the CA recorded for the key's certificate, not the key's name.
    """
    for ref in key_refs:
        identity = identities.find(ref)
        if identity is not None and identity.kind == "person":
            raise personal_key_refused(identity.name, identity.common_name)
    identities.check_grant(agency, key_refs, TOKEN_KEY_KINDS)


@dataclass(frozen=True)
class ApiToken:
    """A token as stored (never the secret itself): a bearer credential seen by ``kyso tokens``.

    It is never a person: it signs with seals only (:attr:`in_person`).
    """

    id: str
    name: str
    agency_code: str
    key_refs: tuple[str, ...]
    rate_per_minute: int
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    in_person = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, credential: Credential) -> ApiToken:
        return cls(
            credential.id,
            credential.label,
            credential.agency or "",
            credential.key_refs,
            credential.rate_per_minute or DEFAULT_RATE,
            credential.created_at,
            credential.last_used_at,
            credential.revoked_at,
        )


class TokenStore:
    """API tokens: the bearer credentials in the Kyso database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.credentials = Credentials(engine)

    def create(
        self,
        agency_code: str,
        key_refs: tuple[str, ...],
        name: str = "",
        rate_per_minute: int = DEFAULT_RATE,
    ) -> tuple[ApiToken, str]:
        """A new token and its secret (shown once); keys must be checked against the agency."""
        if not key_refs:
            raise InvalidRequest("a token needs at least one key it may sign with")
        if not 1 <= rate_per_minute <= 100_000:
            raise InvalidRequest("the rate must be between 1 and 100000 requests a minute")
        made, secret = self.credentials.issue_token(agency_code, key_refs, name, rate_per_minute)
        return ApiToken.of(made), secret

    def get(self, token_id: str) -> ApiToken:
        try:
            found = self.credentials.get(token_id)
        except UnknownCredential:
            found = None
        if found is None or found.kind is not Kind.BEARER:
            raise NotFound(f"no token {token_id}")
        return ApiToken.of(found)

    def all(self, agency: str | None = None) -> list[ApiToken]:
        return [ApiToken.of(c) for c in self.credentials.all(agency, BEARER)]

    def revoke(self, token_id: str) -> ApiToken:
        self.get(token_id)
        self.credentials.revoke(token_id)
        return self.get(token_id)

    def principal(self, authorization: str) -> Principal:
        """Who sent ``Authorization: Bearer …``; :class:`InvalidToken` says why not."""
        try:
            return self.credentials.authenticate(Presented(authorization), BEARER)
        except Unauthenticated as exc:
            raise InvalidToken(str(exc)) from None

    def authenticate(self, presented: str) -> ApiToken:
        """The active token whose secret is ``presented``; :class:`InvalidToken` otherwise."""
        found = self.principal(f"Bearer {presented}")
        return self.get(found.credential_id or "")


class RequestLimiter:
    """A sliding one-minute window of requests per key, kept in this process's memory.

    Keys whose window is empty are dropped once a window: keys may come from anonymous
    clients (their addresses), and memory must not grow with every address ever seen.
    """

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def hit(self, key: str, limit: int) -> None:
        """Count one request; raise :class:`RateLimited` if ``limit`` is already reached."""
        wait = self.take(key, limit)
        if wait:
            raise RateLimited(f"more than {limit} requests a minute: slow down", wait)

    def take(self, key: str, limit: int) -> int:
        """Count one request for ``key`` and return 0; or, if ``limit`` requests are already in
        the window, count nothing and return the seconds (at least 1) until one leaves it."""
        now = self.clock()
        with self._lock:
            if now - self._swept >= self.window:
                self._sweep(now)
            hits = self._hits.setdefault(key, collections.deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= limit:
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            return 0

    def _sweep(self, now: float) -> None:
        idle = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in idle:
            del self._hits[key]
        self._swept = now

    def tracked_keys(self) -> int:
        """How many keys are kept in memory."""
        with self._lock:
            return len(self._hits)
