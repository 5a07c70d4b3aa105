"""API tokens for agency systems: each bound to one agency and to the keys it may sign with.

A token may hold its agency's seal keys only (:data:`TOKEN_KEY_KINDS`): a personal signature
needs the officer in person, and a system calling the API is not him. Tokens made before this
rule may still list a personal key; it is refused when used (:func:`personal_key_refused`).

A token is ``kyso_`` + 32 random bytes (URL-safe base64), shown once when it is created. The
database keeps only its SHA-256: a request's token is hashed, looked up by that hash and
compared in constant time. Every token has a request rate (per minute), enforced by
:class:`RequestLimiter` in the serving process.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from certs.clock import as_utc as _utc
from certs.clock import utcnow
from directory.db import metadata

from .errors import InvalidRequest, InvalidToken, NotFound, PersonalKeyNotAllowed, RateLimited
from .identities import Identities

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False, index=True),
    sa.Column("key_refs", sa.Text, nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("rate_per_minute", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

TOKEN_PREFIX = "kyso_"  # noqa: S105 - a prefix that secret scanners can recognise
DEFAULT_RATE = 120
MAX_TOKEN_LENGTH = 200
_LAST_USED_EVERY = dt.timedelta(minutes=1)
# The certificate profiles (certs.profiles.Profile) a token may sign with.
TOKEN_KEY_KINDS = ("seal",)


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


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    """A token as stored (never the secret itself)."""

    id: str
    name: str
    agency_code: str
    key_refs: tuple[str, ...]
    rate_per_minute: int
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _token(row: sa.Row) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        agency_code=row.agency_code,
        key_refs=tuple(json.loads(row.key_refs)),
        rate_per_minute=int(row.rate_per_minute),
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        last_used_at=_utc(row.last_used_at),
        revoked_at=_utc(row.revoked_at),
    )


class TokenStore:
    """API tokens in the Kyso database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

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
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tk_" + secrets.token_hex(6)
        values = {
            "id": token_id,
            "name": name.strip() or f"token of {agency_code}",
            "agency_code": agency_code,
            "key_refs": json.dumps(list(key_refs)),
            "token_hash": token_hash(secret),
            "rate_per_minute": rate_per_minute,
            "created_at": utcnow(),
        }
        with self.engine.begin() as conn:
            conn.execute(api_tokens.insert().values(**values))
        return self.get(token_id), secret

    def get(self, token_id: str) -> ApiToken:
        with self.engine.connect() as conn:
            row = conn.execute(api_tokens.select().where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id}")
        return _token(row)

    def all(self, agency: str | None = None) -> list[ApiToken]:
        query = api_tokens.select().order_by(api_tokens.c.created_at)
        if agency is not None:
            query = query.where(api_tokens.c.agency_code == agency)
        with self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(query).all()]

    def revoke(self, token_id: str) -> ApiToken:
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id)
                .where(api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return self.get(token_id)

    def authenticate(self, presented: str) -> ApiToken:
        """The active token whose secret is ``presented``; :class:`InvalidToken` otherwise."""
        if not presented.startswith(TOKEN_PREFIX) or len(presented) > MAX_TOKEN_LENGTH:
            raise InvalidToken("the API token is malformed")
        digest = token_hash(presented)
        with self.engine.connect() as conn:
            row = conn.execute(api_tokens.select().where(api_tokens.c.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise InvalidToken("the API token is not valid")
        token = _token(row)
        if not token.active:
            raise InvalidToken("the API token was revoked")
        now = utcnow()
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    api_tokens.update().where(api_tokens.c.id == token.id).values(last_used_at=now)
                )
        return token


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
