"""Serve the app from several processes (gunicorn, pre-fork), for more than one core.

One Python process runs Python code on one core at a time; signature verification and
signing are CPU work, so the relay scales across cores with processes, not threads. Each
worker builds its own app after the fork (its own database pool, keys and push worker);
what they share lives in the database, which already serialises the relay's writes
(``exchange.store``), hands out TSA serial numbers in disjoint blocks and leases push
deliveries to one worker at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Prefork(BaseApplication):
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self._factory()


def serve_prefork(
    factory: Callable[[], Flask], host: str, port: int, workers: int, threads: int
) -> None:
    """Run ``factory()``'s app in ``workers`` processes of ``threads`` threads each, until
    SIGTERM or SIGINT (then finish the requests in flight, up to 30 s)."""
    _Prefork(
        factory,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            # Each response closes its connection and a worker takes no more connections
            # than it has threads: keep-alive clients would all stay with the worker that
            # accepted them first, and leave the other cores idle.
            "keepalive": 0,
            "worker_connections": threads,
            "preload_app": False,  # built in each worker, after the fork
            "timeout": 120,
            "graceful_timeout": 30,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "kyso",
        },
    ).run()
