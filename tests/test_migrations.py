"""One schema: the migrations build exactly the tables, and the next migration comes from them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from directory import load_directory
from directory.store import AgencyStore
from kyso.db import (
    METADATA,
    MIGRATIONS,
    make_engine,
    migrations_config,
    new_revision,
    next_revision_id,
    schema_differences,
    upgrade,
)

from .conftest import KYSO
from .exchangetools import new_pg_database

PROVINCE = "000.00.00.H41"
T = "2030-01-01 08:00:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database of each kind Kyso runs on (a new PostgreSQL database, dropped after)."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'kyso.sqlite'}", lambda: None
    else:
        url, drop = new_pg_database()
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop()


def test_an_empty_database_migrates_to_exactly_the_tables(empty_db: sa.Engine) -> None:
    upgrade(empty_db)
    with empty_db.connect() as conn:
        assert schema_differences(conn) == []
        unique = sa.inspect(conn).get_unique_constraints("exchange_deliveries")
    assert [uq["name"] for uq in unique] == ["exchange_deliveries_dedupe_key"]


def test_the_comparison_sees_a_default_that_differs(tmp_path: Path) -> None:
    """The SQLite allowance for empty-string defaults hides no other default."""
    engine = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(engine)
    tables = sa.MetaData(naming_convention=METADATA.naming_convention)
    for table in METADATA.sorted_tables:
        table.to_metadata(tables)
    tables.tables["exchange_messages"].c.subject.server_default = sa.DefaultClause("?")
    with engine.connect() as conn:
        changed = [d[0][2:4] for d in schema_differences(conn, tables) if isinstance(d, list)]
    assert changed == [("exchange_messages", "subject")]


def _migrate(engine: sa.Engine, target: str) -> None:
    config = migrations_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, target)


def test_0005_names_sqlites_unique_constraints_and_keeps_every_row(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'before.sqlite'}")
    _migrate(engine, "0003")
    _migrate(engine, "0004")
    with engine.begin() as conn:  # a delivery of a status: rows that refer to a rebuilt table
        for statement in (
            f"INSERT INTO agencies (code, name, level) VALUES ('{PROVINCE}', 'UBND', 'province')",
            "INSERT INTO exchange_messages (id, sender, document_id, package_sha256,"
            " package_size, transport, received_at, receipt_xml, receipt_sha256, signer_serial)"
            f" VALUES ('m1', '{PROVINCE}', 'd1', 'p', 10, 'api', '{T}', x'00', 'r', '1A')",
            "INSERT INTO exchange_statuses (message_id, from_agency, code, xml, sha256,"
            f" signed_at, received_at) VALUES ('m1', '{PROVINCE}', '03', x'00', 's', '{T}', '{T}')",
            "INSERT INTO exchange_deliveries (agency, kind, message_id, status_id, dedupe,"
            f" created_at, since) VALUES ('{PROVINCE}', 'status', 'm1', 1, 'k', '{T}', '{T}')",
        ):
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_unique_constraints("exchange_statuses")[0]["name"] is None

    upgrade(engine)

    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = {
            table: [uq["name"] for uq in inspector.get_unique_constraints(table)]
            for table in ("api_tokens", "exchange_credentials", "exchange_deliveries")
        }
        delivery = conn.exec_driver_sql("SELECT status_id, dedupe FROM exchange_deliveries").one()
        status = conn.exec_driver_sql("SELECT id, sha256 FROM exchange_statuses").one()
        foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
        assert schema_differences(conn) == []
    assert names == {
        "api_tokens": ["api_tokens_token_hash_key"],
        "exchange_credentials": ["exchange_credentials_secret_sha256_key"],
        "exchange_deliveries": ["exchange_deliveries_dedupe_key"],
    }
    assert (tuple(delivery), tuple(status), foreign_keys) == ((1, "k"), (1, "s"), 1)


def _with_agency_websites() -> sa.MetaData:
    """Kyso's tables and a change to them: agencies get a (unique) website, and notes."""
    tables = sa.MetaData(naming_convention=METADATA.naming_convention)
    for table in METADATA.sorted_tables:
        table.to_metadata(tables)
    agencies = tables.tables["agencies"]
    agencies.append_column(sa.Column("website", sa.String(200)))
    agencies.append_constraint(sa.UniqueConstraint("website"))
    sa.Table(
        "agency_notes",
        tables,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), index=True),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
    )
    return tables


def test_the_next_migration_is_generated_from_the_tables(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    data = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(data, migrations)
    loaded = AgencyStore(data).load(load_directory())  # children refer to their parents
    tables = _with_agency_websites()
    scratch = make_engine(f"sqlite:///{tmp_path / 'scratch.sqlite'}")

    versions = sorted((migrations / "versions").glob("*.py"))
    head, following = versions[-1].name[:4], next_revision_id(versions)
    path = new_revision("agency websites", scratch, migrations=migrations, tables=tables)

    assert path == migrations / "versions" / f"{following}_agency_websites.py"
    assert int(following) == int(head) + 1
    source = path.read_text()
    assert f'down_revision = "{head}"' in source
    assert 'op.f("agencies_website_key")' in source
    assert 'op.f("ix_agency_notes_agency")' in source
    upgrade(data, migrations)  # rebuilds agencies on SQLite, which other rows refer to
    with data.connect() as conn:
        assert schema_differences(conn, tables) == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    assert len(AgencyStore(data).directory()) == loaded
    again = make_engine(f"sqlite:///{tmp_path / 'again.sqlite'}")
    assert new_revision("nothing", again, migrations=migrations, tables=tables) is None
    assert sorted(p.name for p in (migrations / "versions").glob("*.py"))[len(versions) :] == [
        path.name
    ]


def test_kyso_db_revision_writes_nothing_when_the_migrations_build_the_tables(
    tmp_path: Path,
) -> None:
    before = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    result = subprocess.run(
        [KYSO, "--data", str(tmp_path), "db", "revision", "-m", "nothing new"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "nothing to generate" in result.stdout
    assert sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")) == before
