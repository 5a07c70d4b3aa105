"""One SQLite writer at a time, woken the moment the lock is free.

SQLite lets one connection write at a time; the others wait in its busy handler, which
polls with growing sleeps (1, 2, 5, 10 … 100 ms). Under a burst, a writer that just missed
the lock sleeps long after it was released, and that sleep is the relay's latency tail. The
gate queues the writers instead: threads of a process on a lock, processes on an ``flock``
of a file beside the database, which the kernel hands on as soon as it is released.

The gate only orders writers; ``BEGIN IMMEDIATE`` and the busy timeout still guarantee
correctness for any writer that does not take it. PostgreSQL (row locks, queued by the
server) and in-memory databases need no gate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa


class WriteGate:
    """The writers' queue of one database file, for this process."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._owner: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Wait for and hold the gate (blocking). A thread that already holds it gets
        :class:`RuntimeError`: a nested write would wait for itself."""
        if self._owner == threading.get_ident():
            raise RuntimeError("a write transaction inside another one, on the same database")
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _after_fork(self) -> None:
        # An flock belongs to the open file description, which a forked child shares with
        # its parent: the child opens its own (closing, never unlocking, the inherited one,
        # which may be the parent's lock) and starts with a free thread lock.
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._owner = None
        self._threads = threading.Lock()


_gates: dict[str, WriteGate] = {}  # by the database file's real path
_engines: weakref.WeakKeyDictionary[sa.Engine, WriteGate | None] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _gates_lock
    _gates_lock = threading.Lock()
    for gate in _gates.values():
        gate._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def write_gate(engine: sa.Engine) -> contextlib.AbstractContextManager[None]:
    """Hold the gate of ``engine``'s database around a write transaction (a no-op where the
    database needs none). Engines on the same file share one gate."""
    try:
        gate = _engines[engine]
    except KeyError:
        gate = _engines[engine] = _gate_for(engine)
    return contextlib.nullcontext() if gate is None else gate.held()


def _gate_for(engine: sa.Engine) -> WriteGate | None:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = str(Path(database).resolve())
    with _gates_lock:
        gate = _gates.get(path)
        if gate is None:
            gate = _gates[path] = WriteGate(Path(path + ".write-lock"))
        return gate
