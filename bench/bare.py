"""The relay benchmark's baseline: a bare Flask endpoint that only stores the request body
durably (one INSERT and one commit per request), served by waitress like `kyso serve`.

    python -m bench.bare --port PORT --db sqlite:///FILE | postgresql://…  [--threads 8]
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import uuid
from typing import Any

from flask import Flask, request

SCHEMA = "CREATE TABLE IF NOT EXISTS bench_packages (id TEXT PRIMARY KEY, body BYTEA NOT NULL)"


def sqlite_connection(path: str) -> Any:
    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def create_app(db: str) -> Flask:
    local = threading.local()
    if db.startswith("sqlite:///"):
        path = db.removeprefix("sqlite:///")

        def connect() -> Any:
            return sqlite_connection(path)

        insert = "INSERT INTO bench_packages (id, body) VALUES (?, ?)"
    else:
        import psycopg

        def connect() -> Any:
            return psycopg.connect(db)

        insert = "INSERT INTO bench_packages (id, body) VALUES (%s, %s)"

    setup = connect()
    setup.execute(SCHEMA)
    setup.commit()
    setup.close()

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
    args = parser.parse_args()
    from waitress import serve

    serve(create_app(args.db), host="127.0.0.1", port=args.port, threads=args.threads)


if __name__ == "__main__":
    main()
