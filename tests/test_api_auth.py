"""The storage side of authentication: hashed tokens, Argon2id passwords, the rate limiters."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher

from kyso.accounts import AccountStore, Passwords, Role
from kyso.db import MIGRATIONS, make_engine, upgrade
from kyso.errors import Conflict, InvalidCredentials, InvalidRequest, InvalidToken, RateLimited
from kyso.signing import parse_box
from kyso.tokens import RequestLimiter, TokenStore
from kyso.workspace import safe_name


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(engine)
    return engine


def test_migration_0002_follows_0001() -> None:
    path = MIGRATIONS / "versions" / "0002_accounts_and_tokens.py"
    spec = importlib.util.spec_from_file_location("m0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (module.revision, module.down_revision) == ("0002", "0001")


def test_tokens_are_stored_hashed(engine: sa.Engine) -> None:
    store = TokenStore(engine)
    token, secret = store.create("000.00.00.H41", ("p12:/k/seal.p12",), "iOffice")
    assert secret.startswith("kyso_") and len(secret) >= 45
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM credentials")).mappings().one()
    assert secret not in str(dict(row))
    assert (row["kind"], row["secret_sealed"]) == ("bearer", None)  # only the hash is kept
    assert row["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert store.authenticate(secret).id == token.id
    with pytest.raises(InvalidToken):
        store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    store.revoke(token.id)
    with pytest.raises(InvalidToken, match="revoked"):
        store.authenticate(secret)


class Clock:
    """A clock the test moves (the login limits run on it)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # still Argon2id


def test_passwords_are_argon2id(engine: sa.Engine) -> None:
    store = AccountStore(engine)
    store.add("an", "Nguyễn Văn An", Role.AUDITOR, "mat-khau-rat-dai")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM accounts")).scalar_one()
    assert stored.startswith("$argon2id$") and "mat-khau" not in stored
    assert store.login("AN", "mat-khau-rat-dai", "10.0.0.1").username == "an"
    with pytest.raises(Conflict):
        store.add("an", "Someone", Role.AUDITOR, "another-long-one")
    with pytest.raises(InvalidRequest, match="at least"):
        store.add("binh", "Trần Thị Bình", Role.AUDITOR, "short")
    with pytest.raises(InvalidCredentials):
        store.login("an", "wrong", "10.0.0.1")


def test_a_username_waits_longer_and_longer_but_never_long(engine: sa.Engine) -> None:
    clock = Clock()
    store = AccountStore(engine, Passwords(CHEAP), clock)
    store.add("an", "Nguyễn Văn An", Role.AUDITOR, "mat-khau-rat-dai")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        with pytest.raises(InvalidCredentials):
            store.login("an", "wrong", address)
    waits = []
    for _ in range(10):  # the fifth failure in a row, from any address, starts the waits
        with pytest.raises(RateLimited) as limited:
            store.login("an", "wrong", "10.0.0.5")
        waits.append(limited.value.retry_after)
        # while it waits, even the right password is refused, from every address
        with pytest.raises(RateLimited):
            store.login("an", "mat-khau-rat-dai", "10.9.9.9")
        clock.advance(limited.value.retry_after)
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    # once the wait is over, the right password logs in, from anywhere, and ends the run
    assert store.login("an", "mat-khau-rat-dai", "10.9.9.9").username == "an"
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.login("an", "wrong", "10.0.0.1")
    # unknown usernames are counted the same way (the answer does not tell them apart)
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.login("nobody", "x", "10.0.0.6")
    with pytest.raises(RateLimited):
        store.login("nobody", "x", "10.0.0.7")
    # a day without failures starts a new run
    clock.advance(24 * 3600 + 1)
    with pytest.raises(InvalidCredentials):
        store.login("nobody", "x", "10.0.0.7")


def test_a_password_sprayed_over_usernames_locks_the_address(engine: sa.Engine) -> None:
    clock = Clock()
    store = AccountStore(engine, Passwords(CHEAP), clock)
    store.add("an", "Nguyễn Văn An", Role.AUDITOR, "mat-khau-rat-dai")
    for n in range(48):
        with pytest.raises(InvalidCredentials):
            store.login(f"user{n}", "Mua-xuan-2030", "203.0.113.7")
    # the sprayer's own account logging in does not wipe the address's count
    assert store.login("an", "mat-khau-rat-dai", "203.0.113.7").username == "an"
    with pytest.raises(InvalidCredentials):
        store.login("user48", "Mua-xuan-2030", "203.0.113.7")
    with pytest.raises(RateLimited) as limited:
        store.login("user49", "Mua-xuan-2030", "203.0.113.7")
    assert limited.value.retry_after == 15 * 60
    with pytest.raises(RateLimited):
        store.login("an", "mat-khau-rat-dai", "203.0.113.7")
    assert store.login("an", "mat-khau-rat-dai", "203.0.113.8").username == "an"
    clock.advance(15 * 60)  # the lock is over, and so is the count
    assert store.login("an", "mat-khau-rat-dai", "203.0.113.7").username == "an"
    with pytest.raises(InvalidCredentials):
        store.login("user50", "Mua-xuan-2030", "203.0.113.7")


def test_parallel_attempts_do_not_slip_past_the_wait(engine: sa.Engine) -> None:
    class Counting(Passwords):
        """Counts the passwords checked, slowly enough for the attempts to overlap."""

        checked = 0

        def verify(self, stored: str | None, password: str) -> bool:
            Counting.checked += 1
            time.sleep(0.05)
            return super().verify(stored, password)

    store = AccountStore(engine, Counting(CHEAP), Clock())
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            store.login("an", "wrong", "10.0.0.1")
    Counting.checked = 0
    start = threading.Barrier(12)

    def attempt(_: int) -> str:
        start.wait()
        try:
            store.login("an", "guess", "10.0.0.1")
        except (InvalidCredentials, RateLimited) as exc:
            return type(exc).__name__
        return "logged in"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    # one attempt is checked (and starts the wait); the eleven others are refused unchecked
    assert Counting.checked == 1
    assert outcomes.count("RateLimited") == 12


def test_request_limiter_window() -> None:
    now = [1000.0]
    limiter = RequestLimiter(clock=lambda: now[0])
    for _ in range(3):
        limiter.hit("token:a", 3)
    with pytest.raises(RateLimited) as limited:
        limiter.hit("token:a", 3)
    assert limited.value.retry_after == 60
    limiter.hit("token:b", 3)  # other keys are separate
    now[0] += 60.5
    limiter.hit("token:a", 3)
    assert limiter.tracked_keys() == 1  # token:b was idle a whole window: forgotten
    assert limiter.take("token:a", 1) == 60  # take answers the wait instead of raising


def test_file_names_and_boxes() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\an\\Quyết định 15.pdf") == "Quyết định 15.pdf"
    assert safe_name("a\x00b\nc.pdf") == "abc.pdf"
    assert safe_name("") == "document"
    assert parse_box("330, 350, 510, 440") == (330, 350, 510, 440)
    for bad in ("1,2,3", "a,b,c,d", "5,5,1,1", "nan,0,1,1", "0,0,1e9,1"):
        with pytest.raises(InvalidRequest):
            parse_box(bad)


def test_what_ends_a_web_session(engine: sa.Engine) -> None:
    clock = Clock()
    store = AccountStore(engine, Passwords(CHEAP), clock)
    store.add("an", "Nguyễn Văn An", Role.AUDITOR, "mat-khau-rat-dai")

    def alive(session_id: str, generation: object) -> bool:
        return store.session_account("an", generation, session_id) is not None

    def generation() -> int:
        return store.get("an").session_generation

    first = store.login("an", "mat-khau-rat-dai", "10.0.0.1").session_generation
    assert first == generation() and alive("s1", first) and alive("s2", first)
    assert not alive("s1", None) and not alive("s1", first + 1) and not alive(None, first)
    store.end_session("s1", dt.timedelta(hours=9))
    assert not alive("s1", first) and alive("s2", first)  # one logout ends one session
    store.end_all_sessions("an")
    assert not alive("s2", first)
    second = generation()
    assert alive("s3", second)
    store.set_password("an", "mat-khau-moi-rat-dai")
    assert not alive("s3", second)
    third = generation()
    store.set_active("an", False)
    assert not alive("s4", third)
    store.set_active("an", True)  # enabling again brings no old session back
    assert not alive("s4", third) and alive("s4", generation())
    # an ended id is forgotten once no cookie of it can be valid any more
    clock.advance(9 * 3600 + 1)
    store.end_session("s5", dt.timedelta(hours=9))
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT session_id FROM ended_sessions")).scalars().all()
    assert kept == ["s5"]


def test_rehashing_a_password_ends_no_session(engine: sa.Engine) -> None:
    AccountStore(engine, Passwords(CHEAP)).add(
        "an", "Nguyễn Văn An", Role.AUDITOR, "mat-khau-rat-dai"
    )
    store = AccountStore(engine)  # today's Argon2 parameters: the cheap hash is redone
    generation = store.get("an").session_generation
    assert store.login("an", "mat-khau-rat-dai", "10.0.0.1").session_generation == generation
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM accounts")).scalar_one()
    assert not store.passwords.hasher.check_needs_rehash(stored)
    assert store.session_account("an", generation, "s1") is not None


def test_migration_0004_keeps_the_accounts(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'before.sqlite'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def migrate(step: Callable[[Config, str], None], target: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, target)

    migrate(command.upgrade, "0002")
    with engine.begin() as conn:  # an account and a failure as Kyso stored them before 0004
        conn.execute(
            sa.text(
                "INSERT INTO accounts (username, full_name, role, key_refs, password_hash,"
                " active, created_at) VALUES ('an', 'Nguyễn Văn An', 'auditor', '[]', :hash,"
                " 1, '2030-01-01 08:00:00')"
            ),
            {"hash": CHEAP.hash("mat-khau-rat-dai")},
        )
        conn.execute(
            sa.text("INSERT INTO login_failures VALUES ('an|10.0.0.1', 3, '2030-01-01', NULL)")
        )
    upgrade(engine)
    store = AccountStore(engine, Passwords(CHEAP))
    account = store.get("an")
    assert (account.full_name, account.role, account.session_generation) == (
        "Nguyễn Văn An", Role.AUDITOR, 0,
    )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM login_failures")).scalar_one() == 0
    assert store.login("an", "mat-khau-rat-dai", "10.0.0.1").username == "an"
    migrate(command.downgrade, "0002")  # the step before 0004 (and 0005, which joins it to 0003)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT username, full_name FROM accounts")).one()
    assert tuple(row) == ("an", "Nguyễn Văn An")
