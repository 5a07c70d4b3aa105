"""certs.aio: coroutines run on one loop per thread, never on a loop a parent process made."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading

import pytest

from certs.aio import run_sync


async def _running_loop_id() -> int:
    return id(asyncio.get_running_loop())


def _in_child(parent_loop: int, answer: multiprocessing.SimpleQueue) -> None:
    answer.put(run_sync(_running_loop_id()) != parent_loop)


def test_one_loop_per_thread_and_a_new_one_after_a_fork() -> None:
    first = run_sync(_running_loop_id())
    assert run_sync(_running_loop_id()) == first  # kept for the thread
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(run_sync(_running_loop_id())))
    thread.start()
    thread.join()
    assert other and other[0] != first
    fork = multiprocessing.get_context("fork")
    answer = fork.SimpleQueue()
    child = fork.Process(target=_in_child, args=(first, answer))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0 and answer.get() is True  # its own loop, not the parent's copy


def test_refused_inside_a_running_loop() -> None:
    async def nested() -> None:
        coroutine = _running_loop_id()
        with pytest.raises(RuntimeError, match="running event loop"):
            run_sync(coroutine)

    asyncio.run(nested())
