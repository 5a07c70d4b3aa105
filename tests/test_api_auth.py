"""The storage side of authentication: hashed tokens, Argon2id passwords, the rate limiters."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import sqlalchemy as sa

from kyso.accounts import MAX_FAILURES, AccountStore, Role
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
        row = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    assert secret not in str(dict(row))
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert store.authenticate(secret).id == token.id
    with pytest.raises(InvalidToken):
        store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    store.revoke(token.id)
    with pytest.raises(InvalidToken, match="revoked"):
        store.authenticate(secret)


def test_passwords_are_argon2id_and_logins_are_limited(engine: sa.Engine) -> None:
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
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            store.login("an", "wrong", "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        store.login("an", "wrong", "10.0.0.1")
    assert limited.value.retry_after == 15 * 60
    with pytest.raises(RateLimited):
        store.login("an", "mat-khau-rat-dai", "10.0.0.1")
    # another client address is counted on its own
    assert store.login("an", "mat-khau-rat-dai", "10.0.0.2").username == "an"
    # unknown users fail like known ones and are counted too
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            store.login("nobody", "x", "10.0.0.3")
    with pytest.raises(RateLimited):
        store.login("nobody", "x", "10.0.0.3")


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
