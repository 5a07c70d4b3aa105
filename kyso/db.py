"""The database engine, its schema and its migrations (Alembic), shared by every part of Kyso.

The schema is written once: the tables of every layer on :data:`METADATA` (the one
``directory.db.metadata``). The migrations build it step by step on a real database;
:func:`schema_differences` says where a database and the tables part, and :func:`new_revision`
writes the next migration from what they lack (``kyso db revision -m "…"``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations.ops import MigrationScript
from alembic.script import ScriptDirectory

# Importing a store puts its tables on the one metadata.
import exchange.identity
import exchange.store  # noqa: F401
from certs import store as certs_store
from certs import trust_anchors
from directory import certificates as agency_certificates
from directory.db import metadata
from directory.store import AgencyStore

from . import accounts, tokens  # noqa: F401

MIGRATIONS = Path(__file__).parent / "migrations"
METADATA = metadata
_REVISION_ID = re.compile(r"^(\d{4})_")


def _compare_server_default(
    context: MigrationContext,
    _inspected_column: sa.Column[Any],
    _metadata_column: sa.Column[Any],
    inspected_default: str | None,
    _metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Whether an empty-string server default differs on SQLite; ``None``: Alembic decides.

    Alembic's SQLite comparison unquotes ``'…'`` only when something is inside the quotes, so
    it takes every ``DEFAULT ('')`` for a change.
    """
    if context.dialect.name != "sqlite" or rendered_metadata_default != "":
        return None
    return inspected_default not in ("''", "('')")


# What a migration must agree on with the tables besides their columns, keys and indexes.
COMPARE_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": _compare_server_default,
}


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


def migrations_config(migrations: Path = MIGRATIONS) -> Config:
    """The Alembic configuration of the migrations in ``migrations`` (Kyso's unless a test's
    copy); there is no ``alembic.ini``: it is all here."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "40")
    return config


def upgrade(engine: sa.Engine, migrations: Path = MIGRATIONS, target: str = "heads") -> None:
    """Bring the schema to the newest migrations (idempotent), or up to revision ``target``.

    "heads": the parts of Kyso once kept branches of their own off 0001 (joined by 0005), and
    a branch merged from elsewhere is applied rather than left behind.
    """
    config = migrations_config(migrations)
    with engine.connect() as connection:
        if target == "heads" and _up_to_date(connection, config):
            return  # every start of Kyso comes here: no pragmas, no checks
    with (
        engine.connect() as connection,
        _foreign_keys_checked_at_the_end(connection),
        connection.begin(),
    ):
        config.attributes["connection"] = connection
        command.upgrade(config, target)
        _check_foreign_keys(connection)


def _up_to_date(connection: sa.Connection, config: Config) -> bool:
    """Whether the database is at every head of the migrations already."""
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(ScriptDirectory.from_config(config).get_heads())


class ForeignKeysBroken(RuntimeError):
    """A migration left rows whose foreign keys point nowhere (it was rolled back)."""


@contextlib.contextmanager
def _foreign_keys_checked_at_the_end(connection: sa.Connection) -> Iterator[None]:
    """On SQLite, no foreign key checks while migrating (one check at the end instead).

    Alembic alters a SQLite table by copying it and dropping the old one; with the checks on,
    dropping a table other rows refer to fails. SQLite ignores this pragma inside a
    transaction, so it is set before the migrations' transaction and restored after it.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _check_foreign_keys(connection: sa.Connection) -> None:
    """Raise :class:`ForeignKeysBroken` if SQLite finds a dangling foreign key."""
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL checked each one as it went
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise ForeignKeysBroken(f"the migrations broke foreign keys in {', '.join(tables)}")


def schema_differences(connection: sa.Connection, tables: sa.MetaData = METADATA) -> list[Any]:
    """Where the database's schema and ``tables`` part (Alembic's diff; empty if nowhere).

    Types, nullability, keys, unique constraints, indexes and server defaults are compared.
    """
    context = MigrationContext.configure(connection, opts=COMPARE_OPTIONS)
    return list(compare_metadata(context, tables))


def next_revision_id(versions: Iterable[Path]) -> str:
    """The revision id after the highest of ``versions`` (files named ``NNNN_slug.py``)."""
    numbers = [int(m.group(1)) for p in versions if (m := _REVISION_ID.match(p.name))]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(
    message: str,
    against: sa.Engine,
    *,
    empty: bool = False,
    migrations: Path = MIGRATIONS,
    tables: sa.MetaData = METADATA,
) -> Path | None:
    """Write the next migration into ``migrations``: what ``tables`` have and the migrations
    do not build.

    ``against`` is a scratch database: it is upgraded through every migration first, then
    compared with the tables. Returns the new file, or ``None`` if the migrations already build
    exactly the tables. ``empty`` writes a migration with no operations (for data migrations).
    """
    upgrade(against, migrations)
    config = migrations_config(migrations)
    if not empty:
        config.attributes["autogenerate_from"] = tables
    _format_with_ruff(config)

    def skip_if_nothing(_context: MigrationContext, _rev: Any, directives: list[Any]) -> None:
        script: MigrationScript = directives[0]
        if not empty and all(ops.is_empty() for ops in script.upgrade_ops_list):
            directives[:] = []

    with against.begin() as connection:
        config.attributes["connection"] = connection
        written = command.revision(
            config,
            message,
            autogenerate=not empty,
            rev_id=next_revision_id((migrations / "versions").glob("*.py")),
            process_revision_directives=skip_if_nothing,
        )
    scripts = written if isinstance(written, list) else [written]
    return next((Path(s.path) for s in scripts if s is not None), None)


def _format_with_ruff(config: Config) -> None:
    """Have Alembic format a new migration with ruff, where ruff is installed (a dev tool)."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        return
    config.set_section_option("post_write_hooks", "hooks", "ruff_format")
    config.set_section_option("post_write_hooks", "ruff_format.type", "exec")
    config.set_section_option("post_write_hooks", "ruff_format.executable", ruff)
    config.set_section_option(
        "post_write_hooks", "ruff_format.options", "format REVISION_SCRIPT_FILENAME"
    )


def copy_pki_and_directory(source: sa.Engine, target: sa.Engine) -> None:
    """Copy the agency directory and the CA's records into another database (migrated first).

    How a deployment moves from the embedded SQLite store to PostgreSQL; agencies go in
    parents first (the directory's own loader orders them), certificates, counters, the trust
    store and the agencies' certificate registrations as rows (registrations without their
    ids: the target numbers them, so that its sequence stays ahead).
    """
    upgrade(target)
    AgencyStore(target).load(AgencyStore(source).directory())
    tables = (
        certs_store.certificates,
        certs_store.counters,
        trust_anchors.trust_anchors,
        agency_certificates.agency_certificates,
    )
    with source.connect() as src, target.begin() as dst:
        for table in tables:
            rows = [dict(row._mapping) for row in src.execute(table.select())]
            for row in rows if table is agency_certificates.agency_certificates else ():
                del row["id"]
            if rows:
                dst.execute(table.insert(), rows)
