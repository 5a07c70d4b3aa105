"""People who use the web pages: accounts, roles, passwords and the login rate limit.

Passwords are hashed with Argon2id (argon2-cffi); a login with an unknown username costs as
much as one with a known username. Failed logins are counted per username and client address
in the database, so a restart does not reset them: after :data:`MAX_FAILURES` failures in a
row the pair is locked for :data:`LOCKOUT` and every attempt, right or wrong, is refused with
:class:`RateLimited`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from certs.clock import as_utc as _utc
from certs.clock import utcnow

from .errors import (
    Conflict,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("agency_code", sa.String(32)),
    sa.Column("key_refs", sa.Text, nullable=False, default="[]"),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
)

MAX_FAILURES = 10
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

Clock = Callable[[], dt.datetime]


class Role(StrEnum):
    OFFICER = "officer"  # signs with a personal key and the agency's seal
    CLERK = "clerk"  # văn thư: affixes the agency's seal
    AUDITOR = "auditor"  # verifies documents
    ADMIN = "admin"  # sees agencies, certificates, tokens and accounts


# What each role may do; every signed-in user may verify.
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OFFICER: frozenset({"sign", "verify"}),
    Role.CLERK: frozenset({"sign", "verify"}),
    Role.AUDITOR: frozenset({"verify"}),
    Role.ADMIN: frozenset({"verify", "admin"}),
}

# Which kinds of key each role may be granted.
KEY_KINDS: dict[Role, tuple[str, ...]] = {
    Role.OFFICER: ("person", "seal"),
    Role.CLERK: ("seal",),
    Role.AUDITOR: (),
    Role.ADMIN: (),
}


@dataclass(frozen=True)
class Account:
    username: str
    full_name: str
    role: Role
    agency_code: str | None
    key_refs: tuple[str, ...]
    active: bool
    created_at: dt.datetime

    def can(self, action: str) -> bool:
        return self.active and action in PERMISSIONS[self.role]

    def require(self, action: str) -> None:
        if not self.can(action):
            raise PermissionDenied(f"the {self.role} role may not {action}")


def _account(row: sa.Row) -> Account:
    return Account(
        username=row.username,
        full_name=row.full_name,
        role=Role(row.role),
        agency_code=row.agency_code,
        key_refs=tuple(json.loads(row.key_refs)),
        active=bool(row.active),
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
    )


class Passwords:
    """Argon2id hashing; one dummy hash makes unknown usernames cost the same."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            with self._lock:
                if self._dummy is None:
                    self._dummy = self.hasher.hash("kyso: no such user")
            stored = self._dummy
            self._check(stored, password)
            return False
        return self._check(stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest("the password is too long")
    return password


def normalize_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username).strip().lower()


class AccountStore:
    """Accounts and login failures in the Kyso database."""

    def __init__(
        self, engine: sa.Engine, passwords: Passwords | None = None, clock: Clock = utcnow
    ) -> None:
        self.engine = engine
        self.passwords = passwords or Passwords()
        self.clock = clock  # login limits run on it: tests move it instead of sleeping

    # -- accounts --------------------------------------------------------------------------

    def add(
        self,
        username: str,
        full_name: str,
        role: Role,
        password: str,
        agency_code: str | None = None,
        key_refs: tuple[str, ...] = (),
    ) -> Account:
        """Create an account; keys must already be checked against the agency (see Identities)."""
        username = normalize_username(username)
        if not USERNAME.match(username):
            raise InvalidRequest(
                f"username {username!r}: 2-32 characters, a-z 0-9 . _ -, starting with a letter"
                " or digit"
            )
        if not full_name.strip():
            raise InvalidRequest("the full name must not be empty")
        if key_refs and not KEY_KINDS[role]:
            raise InvalidRequest(f"a {role} account signs nothing: give it no keys")
        if role in (Role.OFFICER, Role.CLERK) and not agency_code:
            raise InvalidRequest(f"a {role} account belongs to an agency: give --agency")
        values = {
            "username": username,
            "full_name": unicodedata.normalize("NFC", full_name.strip()),
            "role": role.value,
            "agency_code": agency_code,
            "key_refs": json.dumps(list(key_refs)),
            "password_hash": self.passwords.hash(check_password(password)),
            "active": True,
            "created_at": self.clock(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(accounts.insert().values(**values))
        except sa.exc.IntegrityError:
            raise Conflict(f"account {username} already exists") from None
        return self.get(username)

    def find(self, username: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                accounts.select().where(accounts.c.username == normalize_username(username))
            ).first()
        return _account(row) if row else None

    def get(self, username: str) -> Account:
        account = self.find(username)
        if account is None:
            raise NotFound(f"no account {username}")
        return account

    def all(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(accounts.select().order_by(accounts.c.username)).all()
        return [_account(r) for r in rows]

    def set_password(self, username: str, password: str) -> None:
        digest = self.passwords.hash(check_password(password))
        with self.engine.begin() as conn:
            result = conn.execute(
                accounts.update()
                .where(accounts.c.username == normalize_username(username))
                .values(password_hash=digest)
            )
        if result.rowcount == 0:
            raise NotFound(f"no account {username}")

    def set_active(self, username: str, active: bool) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                accounts.update()
                .where(accounts.c.username == normalize_username(username))
                .values(active=active)
            )
        if result.rowcount == 0:
            raise NotFound(f"no account {username}")

    # -- logging in ------------------------------------------------------------------------

    def login(self, username: str, password: str, client: str) -> Account:
        """The account if the password is right; counts failures per username and client.

        Raises :class:`InvalidCredentials` for a wrong username or password and
        :class:`RateLimited` while the pair is locked (from the tenth failure in a row).
        """
        name = normalize_username(username)[:64]
        subject = f"{name}|{client}"[:255]
        now = self.clock()
        self._check_lock(subject, now)
        with self.engine.connect() as conn:
            row = conn.execute(accounts.select().where(accounts.c.username == name)).first()
        stored = row.password_hash if row is not None else None
        ok = self.passwords.verify(stored, password[:MAX_PASSWORD_LENGTH])
        if not ok or row is None or not row.active:
            self._fail(subject, now)
            raise InvalidCredentials("wrong username or password")
        if self.passwords.hasher.check_needs_rehash(stored or ""):
            self.set_password(name, password)
        with self.engine.begin() as conn:
            conn.execute(login_failures.delete().where(login_failures.c.subject == subject))
        return _account(row)

    def _check_lock(self, subject: str, now: dt.datetime) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(
                login_failures.select().where(login_failures.c.subject == subject)
            ).first()
        locked_until = _utc(row.locked_until) if row is not None else None
        if locked_until is not None and locked_until > now:
            wait = int((locked_until - now).total_seconds()) + 1
            raise RateLimited(f"too many failed logins: try again in {wait} s", wait)

    def _fail(self, subject: str, now: dt.datetime) -> None:
        with self.engine.connect() as conn:
            row = conn.execute(
                login_failures.select().where(login_failures.c.subject == subject)
            ).first()
        first = _utc(row.first_failure_at) if row is not None else None
        if row is None or first is None or now - first > LOCKOUT:
            failures, first = 1, now
        else:
            failures = int(row.failures) + 1
        locked_until = now + LOCKOUT if failures >= MAX_FAILURES else None
        values = {"failures": failures, "first_failure_at": first, "locked_until": locked_until}
        update = login_failures.update().where(login_failures.c.subject == subject)
        try:
            with self.engine.begin() as conn:
                if row is None:
                    conn.execute(login_failures.insert().values(subject=subject, **values))
                else:
                    conn.execute(update.values(**values))
        except sa.exc.IntegrityError:  # a concurrent first failure inserted the row
            with self.engine.begin() as conn:
                conn.execute(update.values(failures=login_failures.c.failures + 1))
        if locked_until is not None:
            wait = int(LOCKOUT.total_seconds())
            raise RateLimited(f"too many failed logins: try again in {wait} s", wait)
