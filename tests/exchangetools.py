"""Helpers of the exchange tests: relay environments cloned from the session's demo PKI (on
SQLite or on a fresh PostgreSQL database), agency clients, packages and statuses."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certs.keystore import SigningKey, open_key
from exchange.client import (
    Credential,
    RelayClient,
    build_package,
    build_status,
    organization,
)
from exchange.trust import trust_for_pki
from kyso.db import copy_pki_and_directory, make_engine
from signer import edxml, xml_signing
from signer.policy import ValidationPolicy

from .conftest import PASSPHRASE, KysoEnv, free_port, start_server

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROVINCE = "000.00.00.H41"
DEPT = "000.00.02.H41"  # Sở Nội vụ
VINH = "000.00.21.H41"  # district
NGHI_LOC = "000.00.22.H41"  # district
DIEN_CHAU = "000.00.23.H41"  # district
HUNG_DUNG = "000.01.21.H41"  # commune of Vinh
HUNG_LOC = "000.02.21.H41"  # commune of Vinh
NGHI_PHONG = "000.01.22.H41"  # commune of Nghi Lộc


@dataclass
class ExchangeEnv(KysoEnv):
    """A KysoEnv with its own database URL and extra environment for the relay."""

    db_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(KYSO_DB=self.db_url, KYSO_URL=self.url, **self.extra)
        return env

    def credential(self, name: str) -> Credential:
        return Credential.load(self.data / "secrets" / f"agency-{name}.json")

    def client(self, name: str) -> RelayClient:
        return RelayClient(self.credential(name), self.url)

    def key(self, agency: str) -> SigningKey:
        return open_key(f"p12:{self.pki / 'keys' / f'seal-{agency}.p12'}", PASSPHRASE.encode())

    def engine(self) -> sa.Engine:
        return make_engine(self.db_url)

    def policy(self) -> ValidationPolicy:
        return trust_for_pki(self.pki).policy()


def _copy_sqlite(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _copy_rows(source_url: str, target_url: str) -> None:
    source, target = make_engine(source_url), make_engine(target_url)
    copy_pki_and_directory(source, target)
    source.dispose()
    target.dispose()


def new_pg_database() -> tuple[str, Callable[[], None]]:
    """A fresh PostgreSQL database for one test run, and how to drop it."""
    name = f"kyso_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):  # CI's machine runs PostgreSQL: a skip there would hide it
            raise
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


@contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[sa.Engine]:
    """An empty database of ``kind``, ``sqlite`` (in ``folder``) or ``postgresql`` (a new
    database, dropped afterwards)."""
    if kind == "sqlite":
        url, drop = f"sqlite:///{folder / 'kyso.sqlite'}", lambda: None
    else:
        url, drop = new_pg_database()
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop()


def clone_env(
    source: KysoEnv, target: Path, backend: str = "sqlite", **extra: str
) -> tuple[ExchangeEnv, Callable[[], None]]:
    """Copy ``source``'s PKI and directory into a new data dir and database, then create the
    relay credentials with the real `kyso demo init --if-missing`."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source.pki, target / "pki")
    source_db = source.data / "kyso.sqlite"
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if backend == "sqlite":
        db_url = f"sqlite:///{target / 'kyso.sqlite'}"
        _copy_sqlite(source_db, target / "kyso.sqlite")
    else:
        db_url, cleanup = new_pg_database()
        _copy_rows(f"sqlite:///{source_db}", db_url)
    env = ExchangeEnv(target, free_port(), db_url=db_url, extra=dict(extra))
    env.kyso("demo", "init", "--if-missing")
    return env, cleanup


@dataclass
class Relay:
    """A relay environment with its server process."""

    env: ExchangeEnv
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return self.env.url

    def restart(self) -> None:
        self.stop()
        self.process = start_server(self.env)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def running_relay(env: ExchangeEnv) -> Iterator[Relay]:
    relay = Relay(env, start_server(env))
    try:
        yield relay
    finally:
        relay.stop()


# --- Packages and statuses -----------------------------------------------------------------------


def package_bytes(
    env: ExchangeEnv,
    sender: str,
    recipients: list[str],
    attachments: list[edxml.Attachment] | None = None,
    subject: str = "Báo cáo tình hình thực hiện kế hoạch",
    number: str | None = None,
    **kwargs: Any,
) -> bytes:
    """An unsigned package from ``sender`` (names from the directory file)."""
    directory = {"agencies": [{"code": c, "name": f"Cơ quan {c}"} for c in (sender, *recipients)]}
    return build_package(
        organization(directory, sender),
        [organization(directory, r) for r in recipients],
        attachments
        if attachments is not None
        else [
            edxml.Attachment(
                f"cid:{uuid.uuid4().hex[:8]}",
                "bao-cao.txt",
                "text/plain",
                f"Báo cáo {uuid.uuid4()}".encode(),
            )
        ],
        subject=subject,
        number=number or str(int(time.time() * 1000) % 10**9),
        notation="BC-UBND",
        signer_name="Văn thư",
        **kwargs,
    )


def signed_package(
    env: ExchangeEnv, sender: str, recipients: list[str], key_of: str | None = None, **kwargs: Any
) -> bytes:
    with env.key(key_of or sender) as key:
        return xml_signing.sign_xml(package_bytes(env, sender, recipients, **kwargs), key)


def signed_status(
    env: ExchangeEnv,
    client: RelayClient,
    message_id: str,
    agency: str,
    code: str,
    description: str = "",
    key_of: str | None = None,
    message: dict[str, Any] | None = None,
) -> bytes:
    """A status of ``agency`` about a message, signed with ``key_of``'s seal (default: its own)."""
    about = message or client.message(message_id)
    sender = edxml.Organization(agency, f"Cơ quan {agency}")
    with env.key(key_of or agency) as key:
        return xml_signing.sign_xml(build_status(about, sender, code, description), key)


def count_rows(env: ExchangeEnv, table: str, where: str = "") -> int:
    engine = env.engine()
    try:
        with engine.connect() as conn:
            query = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
            return int(conn.exec_driver_sql(query).scalar() or 0)
    finally:
        engine.dispose()


def audit_log_about(data: Path, subject_prefix: str) -> list[dict[str, object]]:
    """The audit events of the SQLite database in ``data`` whose subject starts with
    ``subject_prefix`` (``trust:``, ``agency-certificate:``), as the audit log reads them."""
    from exchange.audit import AuditLog
    from exchange.store import ExchangeStore

    engine = make_engine(f"sqlite:///{data / 'kyso.sqlite'}")
    try:
        events = AuditLog(ExchangeStore(engine)).events(limit=1000)
    finally:
        engine.dispose()
    return [e.to_dict() for e in events if e.subject.startswith(subject_prefix)]


def audit_events(env: ExchangeEnv, event: str) -> list[dict[str, Any]]:
    engine = env.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq, actor, subject, data FROM audit_log WHERE event = :e"),
                {"e": event},
            ).all()
        return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def today() -> dt.date:
    return dt.datetime.now(edxml.VN_TZ).date()
