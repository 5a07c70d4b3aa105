"""exchange.writegate: SQLite writers queue on the gate, across threads and forked processes,
and the relay's write transactions take it."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from certs.store import CertificateStore
from exchange.auth import Authenticator, Role
from exchange.store import ExchangeStore
from exchange.wire import sign_request
from exchange.writegate import write_gate
from kyso.db import make_engine, upgrade

# How long a writer that ought to be blocked is given to get in anyway: a gate that does not
# exclude lets it in at once, so the test fails; a gate that works passes however slow the box.
LONG_ENOUGH = 0.3


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")


def _write_in_child(url: str, entered: multiprocessing.synchronize.Event) -> None:
    with write_gate(make_engine(url)):
        entered.set()


def test_a_forked_process_waits_while_its_parent_holds_the_gate(engine: sa.Engine) -> None:
    fork = multiprocessing.get_context("fork")
    entered = fork.Event()
    with write_gate(engine):
        # Forked while the gate is held: the child inherits the lock file's descriptor (an
        # flock it would share) and a held thread lock (which would never be released).
        child = fork.Process(target=_write_in_child, args=(str(engine.url), entered))
        child.start()
        assert not entered.wait(LONG_ENOUGH), "the child wrote while the parent held the gate"
    assert entered.wait(30), "the child never got the gate after the parent let it go"
    child.join(timeout=30)
    assert child.exitcode == 0


def _waits_in_a_thread_while_the_gate_is_held(engine: sa.Engine, write: Callable[[], None]) -> None:
    done = threading.Event()

    def run() -> None:
        write()
        done.set()

    with write_gate(engine):
        thread = threading.Thread(target=run)
        thread.start()
        assert not done.wait(LONG_ENOUGH), "it wrote while another thread held the gate"
    thread.join(timeout=30)
    assert done.is_set(), "it never got the gate after it was let go"


def test_a_thread_waits_for_the_thread_that_holds_the_gate(engine: sa.Engine) -> None:
    def write() -> None:
        with write_gate(engine):
            pass

    _waits_in_a_thread_while_the_gate_is_held(engine, write)


def test_the_relays_write_transactions_wait_for_the_gate(engine: sa.Engine) -> None:
    upgrade(engine)

    def write() -> None:
        with ExchangeStore(engine).write() as conn:
            conn.exec_driver_sql("SELECT 1")

    _waits_in_a_thread_while_the_gate_is_held(engine, write)


def test_the_authenticators_nonce_write_waits_for_the_gate(engine: sa.Engine) -> None:
    upgrade(engine)
    auth = Authenticator(engine, b"k" * 32, CertificateStore(engine))
    credential, secret = auth.issue(Role.ADMIN, label="test")

    def write() -> None:
        header = sign_request(credential.key_id, secret, "GET", "/api/v1/audit", "", b"")
        auth.authenticate_hmac(header, "GET", "/api/v1/audit", "", b"")

    write()  # the first request also purges old nonces; the next one only records its own

    _waits_in_a_thread_while_the_gate_is_held(engine, write)


def test_a_nested_write_is_refused_rather_than_waiting_for_itself(engine: sa.Engine) -> None:
    same_file = make_engine(str(engine.url))
    with (
        write_gate(engine),
        pytest.raises(RuntimeError, match="inside another"),
        write_gate(same_file),
    ):
        pass
    with write_gate(engine):  # and the gate was let go
        pass
