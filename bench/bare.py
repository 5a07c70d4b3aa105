"""The relay benchmark's baseline: a bare Flask endpoint that only stores the request body
durably (one INSERT and one commit per request), served like `kyso serve` (waitress, or
gunicorn workers with ``--workers``).

    python -m bench.bare --port PORT --db sqlite:///FILE | postgresql://…  [--threads 8]
        [--workers 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import uuid
from typing import Any

from flask import Flask, request

SCHEMA = "CREATE TABLE IF NOT EXISTS bench_packages (id TEXT PRIMARY KEY, body BYTEA NOT NULL)"
INSERT = "INSERT INTO bench_packages (id, body) VALUES ({0}, {0})"


def sqlite_connection(path: str) -> Any:
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def connector(db: str) -> tuple[Any, str]:
    """A function opening a connection to ``db``, and the INSERT in its parameter style."""
    if db.startswith("sqlite:///"):
        path = db.removeprefix("sqlite:///")
        return lambda: sqlite_connection(path), INSERT.format("?")
    import psycopg

    return lambda: psycopg.connect(db), INSERT.format("%s")


def create_schema(db: str) -> None:
    connect, _ = connector(db)
    setup = connect()
    setup.execute(SCHEMA)
    setup.commit()
    setup.close()


def create_app(db: str) -> Flask:
    local = threading.local()
    connect, insert = connector(db)
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    @app.post("/ingest")
    def ingest() -> tuple[str, int]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = connect()
        key = str(uuid.uuid4())
        connection.execute(insert, (key, request.get_data()))
        connection.commit()
        return key, 201

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    create_schema(args.db)
    if args.workers > 1:
        from kyso.prefork import serve_prefork

        serve_prefork(
            lambda: create_app(args.db), "127.0.0.1", args.port, args.workers, args.threads
        )
        return
    from waitress import serve

    serve(create_app(args.db), host="127.0.0.1", port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
