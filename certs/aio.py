"""Run pyHanko's coroutines from synchronous code, on one event loop per thread.

``asyncio.run`` builds and closes an event loop for every call, and on its way out asks
for the SIGINT handler, which (CPython 3.11) formats a ``ValueError`` holding the repr of
the finished task, result included: for a signed document that is the repr of its bytes.
That costs as much as a signature's C14N. The signing and verification hot paths run
short coroutines that never outlive the call (no background tasks), so a loop kept per
thread (and per process: a forked child makes its own) serves them all.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on this thread's loop and return its result.

    Like ``asyncio.run``, it must not be called from inside a running event loop
    (``RuntimeError``); async callers await the coroutine instead.
    """
    if _inside_a_running_loop():
        coroutine.close()
        raise RuntimeError("run_sync() cannot be called from a running event loop")
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed() or getattr(_local, "pid", None) != os.getpid():
        # A forked child (batch signing, gunicorn) must not share its parent's loop: the
        # epoll instance and the wake-up pipe behind it would be shared between processes.
        loop = asyncio.new_event_loop()
        _local.loop, _local.pid = loop, os.getpid()
    return loop.run_until_complete(coroutine)


def _inside_a_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
