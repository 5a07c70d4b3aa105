"""People who use the web pages: accounts, roles, passwords and the login limits.

Passwords are hashed with Argon2id (argon2-cffi); a login with an unknown username costs as
much as one with a known username. Failed logins are counted in the database (a restart
forgets none), separately per username and per client address (:class:`LoginThrottle`, with
the numbers of :class:`LoginLimits`): a username that keeps failing waits longer and longer,
whichever address the attempts come from, but never long, so nobody can lock another person
out for long; an address that fails for many usernames (a password sprayed over a list of
names) is locked for a while. A waiting attempt, right or wrong, is refused with
:class:`RateLimited`.

Web sessions are signed cookies, so the server keeps what ends them: each account has a
session generation, written into its sessions at login and raised by "log out everywhere", a
password change or disabling the account; one logout ends its own session by id
(``ended_sessions``, kept as long as a cookie of that session could still be valid).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from certs.clock import as_utc as _utc
from certs.clock import utcnow
from directory.db import metadata
from exchange.identity import Kind, Principal
from exchange.identity import Role as PrincipalRole
from exchange.writegate import write_gate

from .errors import (
    Conflict,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("agency_code", sa.String(32)),
    sa.Column("key_refs", sa.Text, nullable=False, server_default="[]"),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("session_generation", sa.Integer, nullable=False, default=0, server_default="0"),
)

ended_sessions = sa.Table(
    "ended_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
    sa.Column("last_failure_at", sa.DateTime(timezone=True)),
)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

Clock = Callable[[], dt.datetime]
_NEXT_GENERATION = accounts.c.session_generation + 1  # in SQL: concurrent bumps both count


@dataclass(frozen=True)
class LoginLimits:
    """How failed logins slow guessing down.

    Per username, whatever the address: the ``user_free_failures``-th failure in a row makes
    the next attempt wait ``user_first_delay``, each further failure doubles the wait, up to
    ``user_max_delay``. The run ends with a successful login, or after ``user_forget_after``
    without a failure. The cap keeps short how long anyone can lock another person out.

    Per address, whatever the usernames: ``address_failures`` failures within
    ``address_window`` lock the address for ``address_lockout``; successes do not reset it
    (an attacker's own account must not wipe the count).
    """

    user_free_failures: int = 5
    user_first_delay: dt.timedelta = dt.timedelta(seconds=2)
    user_max_delay: dt.timedelta = dt.timedelta(minutes=5)
    user_forget_after: dt.timedelta = dt.timedelta(hours=24)
    address_failures: int = 50
    address_window: dt.timedelta = dt.timedelta(minutes=15)
    address_lockout: dt.timedelta = dt.timedelta(minutes=15)

    def user_delay(self, failures: int) -> dt.timedelta | None:
        """The wait a run of ``failures`` failures in a row imposes (None: no wait yet)."""
        if failures < self.user_free_failures:
            return None
        doublings = min(failures - self.user_free_failures, 32)  # 2 s · 2³² is long enough
        return min(self.user_first_delay * 2**doublings, self.user_max_delay)

    def address_lock(self, failures: int) -> dt.timedelta | None:
        """The lock ``failures`` failures within the window put on an address (None: none)."""
        return self.address_lockout if failures >= self.address_failures else None


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
    session_generation: int = 0

    def can(self, action: str) -> bool:
        return self.active and action in PERMISSIONS[self.role]

    def require(self, action: str) -> None:
        if not self.can(action):
            raise PermissionDenied(f"the {self.role} role may not {action}")

    def principal(self) -> Principal:
        """The account as a principal (kind ``web``, its username the credential): officers
        and clerks act for their agency; admins and auditors for none, as on the relay."""
        if self.agency_code and self.role in (Role.OFFICER, Role.CLERK):
            role, agency = PrincipalRole.AGENCY, self.agency_code
        else:
            role, agency = (
                (PrincipalRole.ADMIN if self.role is Role.ADMIN else PrincipalRole.AUDITOR),
                None,
            )
        return Principal(role, agency, self.username, Kind.WEB, self.key_refs)


def _account(row: sa.Row) -> Account:
    return Account(
        username=row.username,
        full_name=row.full_name,
        role=Role(row.role),
        agency_code=row.agency_code,
        key_refs=tuple(json.loads(row.key_refs)),
        active=bool(row.active),
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        session_generation=int(row.session_generation),
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
        self,
        engine: sa.Engine,
        passwords: Passwords | None = None,
        clock: Clock = utcnow,
        limits: LoginLimits | None = None,
    ) -> None:
        self.engine = engine
        self.passwords = passwords or Passwords()
        self.clock = clock  # login limits run on it: tests move it instead of sleeping
        self.throttle = LoginThrottle(engine, limits or LoginLimits(), clock)

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
        """Change the password; every session of the account ends (whoever knew the old
        password may have one)."""
        digest = self.passwords.hash(check_password(password))
        self._update(username, password_hash=digest, session_generation=_NEXT_GENERATION)

    def set_active(self, username: str, active: bool) -> None:
        """Enable or disable the account; disabling ends its sessions for good (enabling it
        again does not bring them back)."""
        if active:
            self._update(username, active=True)
        else:
            self._update(username, active=False, session_generation=_NEXT_GENERATION)

    def _update(self, username: str, **values: object) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                accounts.update()
                .where(accounts.c.username == normalize_username(username))
                .values(**values)
            )
        if result.rowcount == 0:
            raise NotFound(f"no account {username}")

    # -- web sessions ----------------------------------------------------------------------

    def session_account(
        self, username: str, generation: object, session_id: object
    ) -> Account | None:
        """The account a web session belongs to, or None if that session has ended.

        A session ends when its account is gone or disabled, when the account's session
        generation is no longer the ``generation`` it was given at login (log out everywhere,
        a new password), or when its ``session_id`` was logged out. A session without a
        generation or an id (made before they existed) has ended too.
        """
        if not isinstance(generation, int) or not isinstance(session_id, str):
            return None
        ended = sa.exists().where(ended_sessions.c.session_id == session_id)
        query = sa.select(accounts, ended.label("ended")).where(
            accounts.c.username == normalize_username(username)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.ended or not row.active:
            return None
        if row.session_generation != generation:
            return None
        return _account(row)

    def end_session(self, session_id: str, lifetime: dt.timedelta) -> None:
        """Log one session out: its id is refused for ``lifetime`` (the longest a cookie of it
        could still be valid), then forgotten, as are other ids whose time is up."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(ended_sessions.delete().where(ended_sessions.c.expires_at <= now))
                conn.execute(
                    ended_sessions.insert().values(session_id=session_id, expires_at=now + lifetime)
                )
        except sa.exc.IntegrityError:  # logged out twice at once: it has ended either way
            pass

    def end_all_sessions(self, username: str) -> None:
        """Log the account out everywhere: every session it has now ends."""
        self._update(username, session_generation=_NEXT_GENERATION)

    # -- logging in ------------------------------------------------------------------------

    def login(self, username: str, password: str, client: str) -> Account:
        """The account if the password is right and neither the username nor the client
        address must wait (see :class:`LoginLimits`).

        Raises :class:`InvalidCredentials` for a wrong username or password (unknown and
        disabled accounts included), and :class:`RateLimited`, with the seconds to wait, when
        the username or the address must wait, or when this failure starts a wait.
        """
        name = normalize_username(username)[:64]
        wait = self.throttle.reserve(name, client)
        with self.engine.connect() as conn:
            row = conn.execute(accounts.select().where(accounts.c.username == name)).first()
        stored = row.password_hash if row is not None else None
        ok = self.passwords.verify(stored, password[:MAX_PASSWORD_LENGTH])
        if not ok or row is None or not row.active:
            if wait is not None:
                raise RateLimited(f"too many failed logins: try again in {wait} s", wait)
            raise InvalidCredentials("wrong username or password")
        self.throttle.succeeded(name, client)
        if self.passwords.hasher.check_needs_rehash(stored or ""):
            # the same password with today's parameters: no session needs to end
            self._update(name, password_hash=self.passwords.hash(password))
        return _account(row)


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


class LoginThrottle:
    """Failed logins per username and per client address, in ``login_failures``.

    An attempt is counted as a failure *before* its password is checked, in one write
    transaction with the check of the waits, and given back when it logs in: otherwise many
    parallel attempts would all pass the check while the first one is still being hashed.
    """

    def __init__(self, engine: sa.Engine, limits: LoginLimits, clock: Clock) -> None:
        self.engine = engine
        self.limits = limits
        self.clock = clock

    def reserve(self, username: str, address: str) -> int | None:
        """Count an attempt for ``username`` from ``address`` as failed until it succeeds.

        Returns the seconds the *next* attempt will have to wait if this one fails (None: no
        wait); raises :class:`RateLimited` (counting nothing) while either must wait.
        """
        try:
            return self._reserve(username, address, self.clock())
        except sa.exc.IntegrityError:  # PostgreSQL: a parallel first failure made the row
            return self._reserve(username, address, self.clock())

    def succeeded(self, username: str, address: str) -> None:
        """The reserved attempt logged in: the username's run of failures ends, and the
        address gets back the failure it was counted (and loses a lock that one set)."""
        address_key = _address_key(address)
        with self._write() as conn:
            conn.execute(
                login_failures.delete().where(login_failures.c.subject == _user_key(username))
            )
            row = _rows(conn, (address_key,)).get(address_key)
            if row is None or row.failures < 1:
                return
            failures = int(row.failures) - 1
            keep = row.locked_until if failures >= self.limits.address_failures else None
            conn.execute(
                login_failures.update()
                .where(login_failures.c.subject == address_key)
                .values(failures=failures, locked_until=keep)
            )

    def _reserve(self, username: str, address: str, now: dt.datetime) -> int | None:
        user_key, address_key = _user_key(username), _address_key(address)
        limits = self.limits
        with self._write() as conn:
            rows = _rows(conn, (user_key, address_key))
            locks = [_utc(r.locked_until) for r in rows.values()]
            waits = [until - now for until in locks if until is not None and until > now]
            if waits:
                wait = _seconds(max(waits))
                raise RateLimited(f"too many failed logins: try again in {wait} s", wait)
            user_row, address_row = rows.get(user_key), rows.get(address_key)
            # A username's run goes on until a day without failures; an address's count
            # starts again when its window has passed or its lock is over.
            new_run = _older(user_row, "last_failure_at", now, limits.user_forget_after)
            failures, first = _one_more(user_row, now, new_run)
            user_wait = limits.user_delay(failures)
            _write_failure(conn, user_key, user_row, failures, first, now, user_wait)
            new_window = _older(address_row, "first_failure_at", now, limits.address_window)
            lock_over = address_row is not None and address_row.locked_until is not None
            failures, first = _one_more(address_row, now, new_window or lock_over)
            address_wait = limits.address_lock(failures)
            _write_failure(conn, address_key, address_row, failures, first, now, address_wait)
        waits = [w for w in (user_wait, address_wait) if w is not None]
        return _seconds(max(waits)) if waits else None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A transaction that reads and writes the counters with no other writer in between:
        ``BEGIN IMMEDIATE`` on SQLite (queued on the write gate), row locks on PostgreSQL."""
        with write_gate(self.engine), self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


def _rows(conn: sa.Connection, keys: tuple[str, ...]) -> dict[str, sa.Row]:
    """The counters of ``keys``, locked for this transaction (in one order: no deadlock)."""
    query = (
        login_failures.select()
        .where(login_failures.c.subject.in_(keys))
        .order_by(login_failures.c.subject)
        .with_for_update()
    )
    return {row.subject: row for row in conn.execute(query)}


def _older(row: sa.Row | None, column: str, now: dt.datetime, age: dt.timedelta) -> bool:
    """Whether the row's time ``column`` is missing or more than ``age`` before ``now``."""
    when = _utc(getattr(row, column)) if row is not None else None
    return when is None or now - when > age


def _one_more(row: sa.Row | None, now: dt.datetime, restart: bool) -> tuple[int, dt.datetime]:
    """(failures, start of the count) after one more failure."""
    if row is None or restart:
        return 1, now
    return int(row.failures) + 1, _utc(row.first_failure_at) or now


def _write_failure(
    conn: sa.Connection,
    key: str,
    row: sa.Row | None,
    failures: int,
    first: dt.datetime,
    now: dt.datetime,
    wait: dt.timedelta | None,
) -> None:
    values = {
        "failures": failures,
        "first_failure_at": first,
        "last_failure_at": now,
        "locked_until": now + wait if wait is not None else None,
    }
    if row is None:
        conn.execute(login_failures.insert().values(subject=key, **values))
    else:
        conn.execute(
            login_failures.update().where(login_failures.c.subject == key).values(**values)
        )


def _user_key(username: str) -> str:
    return f"user:{username}"[:255]


def _address_key(address: str) -> str:
    return f"addr:{address}"[:255]
