"""One identity model: one credential table, one Principal, one way to authenticate.

The migration test builds credentials the way 0005 stored them (api_tokens, exchange_credentials),
upgrades, and authenticates with both, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from certs.store import CertificateRecord, certificate_fingerprint
from directory import load_directory
from directory.store import AgencyStore
from exchange.errors import Refusal, Unauthenticated
from exchange.identity import (
    Credentials,
    Kind,
    Presented,
    Principal,
    Role,
    UnknownCredential,
)
from exchange.wire import sign_request
from kyso.accounts import Account
from kyso.accounts import Role as AccountRole
from kyso.db import make_engine, upgrade

from .exchangetools import empty_database

PROVINCE = "000.00.00.H41"
KEY = b"k" * 32
T = "2030-01-01 08:00:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with empty_database(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(engine)
    AgencyStore(engine).load(load_directory())
    return engine


def _signed(key_id: str, secret: str, path: str = "/api/v1/inbox") -> Presented:
    return Presented(sign_request(key_id, secret, "GET", path, "", b""), None, "GET", path)


def test_0006_moves_every_token_and_key_and_both_still_authenticate(
    empty_db: sa.Engine,
) -> None:
    upgrade(empty_db, target="0005")
    token, key_id, secret = "kyso_" + secrets.token_urlsafe(32), "ak_" + "0" * 16, "s3cret"
    revoked = "kyso_" + secrets.token_urlsafe(32)
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(KEY).encrypt(nonce, secret.encode(), key_id.encode())
    with empty_db.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO agencies (code, name, level) VALUES (:c, 'UBND', 'province')"),
            {"c": PROVINCE},
        )
        for token_id, value, revoked_at in (("tk_1", token, None), ("tk_2", revoked, T)):
            conn.execute(
                sa.text(
                    "INSERT INTO api_tokens (id, name, agency_code, key_refs, token_hash,"
                    " rate_per_minute, created_at, revoked_at)"
                    " VALUES (:id, 'iOffice', :a, :k, :h, 30, :t, :r)"
                ),
                {
                    "id": token_id,
                    "a": PROVINCE,
                    "k": json.dumps(["p12:/k/seal.p12"]),
                    "h": hashlib.sha256(value.encode()).hexdigest(),
                    "t": T,
                    "r": revoked_at,
                },
            )
        conn.execute(
            sa.text(
                "INSERT INTO exchange_credentials (key_id, role, agency_code, label,"
                " secret_sha256, secret_sealed, created_at) VALUES (:k, 'agency', :a, 'edoc',"
                " :h, :s, :t)"
            ),
            {
                "k": key_id,
                "a": PROVINCE,
                "h": hashlib.sha256(secret.encode()).hexdigest(),
                "s": sealed,
                "t": T,
            },
        )

    upgrade(empty_db)

    store = Credentials(empty_db, KEY)
    bearer = store.authenticate(Presented(f"Bearer {token}"))
    assert bearer == Principal(Role.AGENCY, PROVINCE, "tk_1", Kind.BEARER, ("p12:/k/seal.p12",), 30)
    hmac_key = store.authenticate(_signed(key_id, secret))
    assert hmac_key == Principal(Role.AGENCY, PROVINCE, key_id, Kind.HMAC)
    with pytest.raises(Unauthenticated, match="revoked"):
        store.authenticate(Presented(f"Bearer {revoked}"))
    moved = {(c.id, c.kind, c.label, c.active) for c in store.all()}
    assert moved == {
        ("tk_1", Kind.BEARER, "iOffice", True),
        ("tk_2", Kind.BEARER, "iOffice", False),
        (key_id, Kind.HMAC, "edoc", True),
    }
    with empty_db.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert "credentials" in tables and not tables & {"api_tokens", "exchange_credentials"}


def test_every_kind_is_one_principal_through_one_function(engine: sa.Engine) -> None:
    store = Credentials(engine, KEY)
    token, token_secret = store.issue_token(PROVINCE, ("p12:/k/seal.p12",), "iOffice", 60)
    key, key_secret = store.issue_key(Role.AGENCY, PROVINCE, "edoc")
    admin, admin_secret = store.issue_key(Role.ADMIN)
    assert {token.kind, key.kind} == {Kind.BEARER, Kind.HMAC}
    assert store.authenticate(Presented(f"Bearer {token_secret}")).credential_id == token.id
    assert store.authenticate(_signed(key.id, key_secret)).agency == PROVINCE
    operator = store.authenticate(_signed(admin.id, admin_secret))
    assert (operator.role, operator.agency, operator.reads_everything) == (Role.ADMIN, None, True)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT digest, secret_sealed, kind FROM credentials")).all()
    for digest_, sealed, _kind in rows:  # hashed; the HMAC secrets sealed, never in clear
        assert token_secret not in digest_ and key_secret not in digest_
        assert sealed is None or key_secret.encode() not in sealed
    assert {kind for _, sealed, kind in rows if sealed is not None} == {"hmac"}


@pytest.mark.parametrize(
    "sealed", [lambda s: s[:-1] + bytes([s[-1] ^ 1]), lambda s: s[:5]], ids=["tampered", "cut"]
)
def test_a_key_whose_sealed_secret_does_not_open_is_refused_not_a_500(
    engine: sa.Engine, sealed: Any
) -> None:
    """Sealed under another passphrase, altered or truncated in the database: the request is
    refused as an unknown key (401), never an internal error."""
    store = Credentials(engine, KEY)
    key, secret = store.issue_key(Role.AGENCY, PROVINCE)
    with engine.begin() as conn:
        row = conn.execute(
            sa.text("SELECT secret_sealed FROM credentials WHERE id = :i"), {"i": key.id}
        )
        conn.execute(
            sa.text("UPDATE credentials SET secret_sealed = :s WHERE id = :i"),
            {"s": sealed(bytes(row.scalar_one())), "i": key.id},
        )
    with pytest.raises(Unauthenticated, match="cannot be used with this relay") as refused:
        Credentials(engine, KEY).authenticate(_signed(key.id, secret))
    assert refused.value.reason is Refusal.UNKNOWN_KEY
    with pytest.raises(Unauthenticated, match="cannot be used with this relay"):
        Credentials(engine, b"o" * 32).authenticate(_signed(key.id, secret))


def test_a_surface_accepts_only_its_kinds(engine: sa.Engine) -> None:
    store = Credentials(engine, KEY)
    _, token_secret = store.issue_token(PROVINCE, ("p12:/k/seal.p12",), "", 60)
    key, key_secret = store.issue_key(Role.AGENCY, PROVINCE)
    relay = frozenset({Kind.HMAC, Kind.CERTIFICATE})
    with pytest.raises(Unauthenticated, match="Kyso-HMAC-SHA256") as bearer:
        store.authenticate(Presented(f"Bearer {token_secret}"), relay)
    assert bearer.value.reason is Refusal.MALFORMED
    with pytest.raises(Unauthenticated, match="Bearer kyso_") as signed:
        store.authenticate(_signed(key.id, key_secret), frozenset({Kind.BEARER}))
    assert signed.value.reason is Refusal.MALFORMED
    with pytest.raises(Unauthenticated) as missing:
        store.authenticate(Presented(), relay)
    assert missing.value.reason is Refusal.MISSING
    for wrong in ("Bearer kyso_x", "Bearer abc", "Bearer"):
        with pytest.raises(Unauthenticated):
            store.authenticate(Presented(wrong))


def _certificate(agency: str) -> tuple[bytes, CertificateRecord]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seal")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    record = CertificateRecord(
        issuer="CN=seal",
        serial=certificate.serial_number,
        fingerprint=hashlib.sha256(der).hexdigest(),
        ca="issuing",
        profile="seal",
        subject="CN=seal",
        common_name="seal",
        agency_code=agency,
        key_ref=None,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
        der=der,
        revoked_at=None,
        revocation_reason=None,
    )
    return der, record


class _Records:
    def __init__(self, *records: CertificateRecord) -> None:
        self.records = {r.serial: r for r in records}

    def find(self, serial: int) -> CertificateRecord | None:
        return self.records.get(serial)

    def find_certificate(self, certificate: x509.Certificate) -> CertificateRecord | None:
        found = self.records.get(certificate.serial_number)
        return (
            found if found and found.fingerprint == certificate_fingerprint(certificate) else None
        )


def test_a_registered_certificate_is_named_and_can_be_revoked_for_the_relay(
    engine: sa.Engine,
) -> None:
    der, record = _certificate(PROVINCE)
    store = Credentials(engine, KEY, _Records(record))
    unnamed = store.authenticate(Presented(certificate=der))
    assert (unnamed.kind, unnamed.agency, unnamed.credential_id) == (
        Kind.CERTIFICATE,
        PROVINCE,
        None,
    )
    named = store.register_certificate(record.serial, "edoc gateway")
    assert store.authenticate(Presented(certificate=der)).credential_id == named.id
    store.revoke(named.id)
    with pytest.raises(Unauthenticated, match="no longer use the relay") as refused:
        store.authenticate(Presented(certificate=der))
    assert refused.value.reason is Refusal.REVOKED_CERTIFICATE


def test_listing_keeps_revoked_apart(engine: sa.Engine) -> None:
    store = Credentials(engine, KEY)
    kept, _ = store.issue_key(Role.AGENCY, PROVINCE)
    gone, _ = store.issue_token(PROVINCE, ("p12:/k/seal.p12",), "", 60)
    store.revoke(gone.id)
    assert [c.id for c in store.all(active=True)] == [kept.id]
    assert {c.id: c.active for c in store.all()} == {kept.id: True, gone.id: False}
    assert [c.id for c in store.all(kinds={Kind.BEARER})] == [gone.id]
    with pytest.raises(UnknownCredential):
        store.revoke("ak_" + "f" * 16)


def test_a_signed_in_clerk_is_the_same_principal_acting_for_the_agency() -> None:
    now = dt.datetime.now(dt.UTC)
    clerk = Account("lan", "Lê Thị Lan", AccountRole.CLERK, PROVINCE, ("p12:/s.p12",), True, now)
    assert clerk.principal() == Principal(Role.AGENCY, PROVINCE, "lan", Kind.WEB, ("p12:/s.p12",))
    assert clerk.principal().in_person and clerk.principal().require_agency() == PROVINCE
    admin = Account("root", "Admin", AccountRole.ADMIN, PROVINCE, (), True, now)
    assert (admin.principal().role, admin.principal().agency) == (Role.ADMIN, None)
