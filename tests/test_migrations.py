"""One schema: the migrations build exactly the tables, and the next migration comes from them."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs import store as certs_store
from directory import load_directory
from directory.certificates import CertificateRegistry, certificate_fingerprint
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
from .exchangetools import empty_database

PROVINCE = "000.00.00.H41"
T = "2030-01-01 08:00:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database of each kind Kyso runs on (a new PostgreSQL database, dropped after)."""
    with empty_database(request.param, tmp_path) as engine:
        yield engine


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

    upgrade(engine, target="0005")  # 0006 moves the two credential tables into one

    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = {
            table: [uq["name"] for uq in inspector.get_unique_constraints(table)]
            for table in ("api_tokens", "exchange_credentials", "exchange_deliveries")
        }
    upgrade(engine)
    with engine.connect() as conn:
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


@pytest.mark.system
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


def _kyso_certificate(subject: str, uid: str | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject)]
    if uid:
        attributes.insert(0, x509.NameAttribute(NameOID.USER_ID, uid))
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kyso Issuing CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )


def test_0008_keys_the_cas_records_by_issuer_and_registers_kysos_seals(
    empty_db: sa.Engine,
) -> None:
    """Rows kept, with their issuer and fingerprint; seals and officers of a known agency
    registered to it, as the UID bound them before; nothing else registered."""
    seal = _kyso_certificate("UBND tỉnh Nghệ An", PROVINCE)
    officer = _kyso_certificate("Nguyễn Văn An", PROVINCE)
    stranger = _kyso_certificate("Sở lạ", "000.00.99.H41")  # an agency no longer listed
    tsa = _kyso_certificate("Kyso TSA", None)
    _migrate(empty_db, "0007")
    with empty_db.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO agencies (code, name, level) VALUES (:c, 'UBND', 'province')"),
            {"c": PROVINCE},
        )
        for cert, profile in (
            (seal, "seal"),
            (officer, "person"),
            (stranger, "seal"),
            (tsa, "tsa"),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO pki_certificates (serial, ca, profile, subject, common_name,"
                    " agency_code, not_before, not_after, der) VALUES (:serial, 'issuing',"
                    " :profile, :subject, 'x', :agency, :nb, :na, :der)"
                ).bindparams(sa.bindparam("der", type_=sa.LargeBinary())),
                {
                    "serial": format(cert.serial_number, "X"),
                    "profile": profile,
                    "subject": cert.subject.rfc4514_string(),
                    "agency": certs_store.agency_code(cert.subject),
                    "nb": T,
                    "na": T,
                    "der": cert.public_bytes(serialization.Encoding.DER),
                },
            )

    upgrade(empty_db)

    store = certs_store.CertificateStore(empty_db)
    for cert in (seal, officer, stranger, tsa):
        record = store.find(cert.serial_number, cert.issuer)
        assert record is not None and record.fingerprint == certificate_fingerprint(cert)
        assert record.issuer == "CN=Kyso Issuing CA"
    registry = CertificateRegistry(empty_db)
    assert [(r.agency, r.role.value, r.source) for r in registry.all()] == [
        (PROVINCE, "seal", "kyso-ca"),
        (PROVINCE, "officer", "kyso-ca"),
    ]
    assert registry.is_registered_to(seal, PROVINCE, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert registry.agency_of(tsa) is None and registry.agency_of(stranger) is None
    with empty_db.connect() as conn:
        assert schema_differences(conn) == []
    config = migrations_config()
    with empty_db.begin() as connection:  # and back: the rows are kept, the registrations go
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    with empty_db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pki_certificates").scalar_one() == 4
        assert "agency_certificates" not in sa.inspect(conn).get_table_names()
