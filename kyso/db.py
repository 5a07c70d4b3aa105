"""The database engine and its migrations (Alembic), shared by every part of Kyso."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from certs import store as certs_store
from exchange import store as exchange_store

from . import accounts, tokens

MIGRATIONS = Path(__file__).parent / "migrations"
METADATA = [certs_store.metadata, exchange_store.metadata, accounts.metadata, tokens.metadata]


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, full fsync and a busy timeout."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith(("postgresql://", "postgres://")):
        # `--db postgresql://…` means the psycopg 3 driver Kyso ships with (not psycopg2).
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_pre_ping=True)


def upgrade(engine: sa.Engine) -> None:
    """Bring the schema to the newest migrations (idempotent).

    Each part of Kyso keeps its own branch of migrations off the first one, so "heads".
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def copy_pki_and_directory(source: sa.Engine, target: sa.Engine) -> None:
    """Copy the agency directory and the CA's records into another database (migrated first).

    How a deployment moves from the embedded SQLite store to PostgreSQL; agencies go in
    parents first (the directory's own loader orders them), certificates and counters as rows.
    """
    upgrade(target)
    exchange_store.AgencyStore(target).load(exchange_store.AgencyStore(source).directory())
    with source.connect() as src, target.begin() as dst:
        for table in (certs_store.certificates, certs_store.counters):
            rows = [dict(row._mapping) for row in src.execute(table.select())]
            if rows:
                dst.execute(table.insert(), rows)
