"""The CA's records: every certificate issued, its revocation, and monotonic counters.

A small repository over SQLAlchemy Core so that SQLite and PostgreSQL behave alike. The
tables are on Kyso's one :data:`directory.db.metadata`; they are created by the project's
Alembic migrations (``0001``; keyed by issuer and serial since ``0007``).

A certificate is named by its issuer and serial, or by its fingerprint: Kyso's root and
issuing CA are two issuers, and a PKI made again is another, so a serial alone is not a key.
The issuer is kept as the RFC 4514 text of the issuer's name (how the directory's
registrations name it too, :mod:`directory.certificates`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from directory.certificates import certificate_fingerprint
from directory.db import metadata

from .clock import as_utc as _utc
from .errors import AlreadyRevoked, PKIError, UnknownCertificate
from .names import agency_code, common_name

certificates = sa.Table(
    "pki_certificates",
    metadata,
    # Keyed by issuer and serial (RFC 5280 4.1.2.2: a serial is unique per CA only).
    sa.Column("issuer", sa.Text, primary_key=True),
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("ca", sa.String(64), nullable=False, index=True),
    sa.Column("profile", sa.String(16), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("common_name", sa.Text, nullable=False),
    sa.Column("agency_code", sa.String(32), index=True),
    sa.Column("key_ref", sa.Text),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revocation_reason", sa.String(32)),
)

counters = sa.Table(
    "pki_counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


def serial_hex(serial: int) -> str:
    """The canonical text form of a serial number: upper-case hex, no leading zeros."""
    return format(serial, "X")


def parse_serial(text: str) -> int:
    """Accept ``0x1A2B``, ``1A:2B`` or ``1a2b`` (hex, as openssl prints serials)."""
    cleaned = text.strip().replace(":", "").lower().removeprefix("0x")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise UnknownCertificate(f"{text!r} is not a serial number (expected hex)") from None


class AmbiguousSerial(PKIError):
    """Certificates of several issuers have this serial: name the issuer."""


def issuer_key(name: x509.Name) -> str:
    """How an issuer's name is keyed: its RFC 4514 text."""
    return name.rfc4514_string()


@dataclass(frozen=True)
class CertificateRecord:
    """One issued certificate as the CA remembers it."""

    issuer: str
    serial: int
    fingerprint: str
    ca: str
    profile: str
    subject: str
    common_name: str
    agency_code: str | None
    key_ref: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes
    revoked_at: dt.datetime | None
    revocation_reason: str | None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _record(row: sa.Row) -> CertificateRecord:
    return CertificateRecord(
        issuer=row.issuer,
        serial=int(row.serial, 16),
        fingerprint=row.fingerprint,
        ca=row.ca,
        profile=row.profile,
        subject=row.subject,
        common_name=row.common_name,
        agency_code=row.agency_code,
        key_ref=row.key_ref,
        not_before=_utc(row.not_before),  # type: ignore[arg-type]
        not_after=_utc(row.not_after),  # type: ignore[arg-type]
        der=row.der,
        revoked_at=_utc(row.revoked_at),
        revocation_reason=row.revocation_reason,
    )


class CertificateStore:
    """Issued certificates and revocations, kept in the Kyso database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(
        self, certificate: x509.Certificate, ca: str, profile: str, key_ref: str | None = None
    ) -> CertificateRecord:
        """Remember a newly issued certificate."""
        values = {
            "issuer": issuer_key(certificate.issuer),
            "serial": serial_hex(certificate.serial_number),
            "fingerprint": certificate_fingerprint(certificate),
            "ca": ca,
            "profile": profile,
            "subject": certificate.subject.rfc4514_string(),
            "common_name": common_name(certificate.subject),
            "agency_code": agency_code(certificate.subject),
            "key_ref": key_ref,
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
            "der": certificate.public_bytes(serialization.Encoding.DER),
        }
        with self.engine.begin() as conn:
            conn.execute(certificates.insert().values(**values))
        return self.get(certificate.serial_number, certificate.issuer)

    @staticmethod
    def _named(serial: int, issuer: x509.Name | None) -> sa.ColumnElement[bool]:
        named = certificates.c.serial == serial_hex(serial)
        if issuer is not None:
            named = named & (certificates.c.issuer == issuer_key(issuer))
        return named

    def find(self, serial: int, issuer: x509.Name | None = None) -> CertificateRecord | None:
        """The certificate ``issuer`` issued with ``serial``, if Kyso issued it.

        Without ``issuer`` (callers written when serials were the key), the one certificate
        with that serial; :class:`AmbiguousSerial` if several issuers used it.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(certificates.select().where(self._named(serial, issuer))).all()
        if len(rows) > 1:
            issuers = "; ".join(sorted(r.issuer for r in rows))
            raise AmbiguousSerial(f"serial {serial_hex(serial)} was issued by {issuers}")
        return _record(rows[0]) if rows else None

    def find_certificate(self, certificate: x509.Certificate) -> CertificateRecord | None:
        """The record of exactly this certificate (by fingerprint), if Kyso issued it."""
        with self.engine.connect() as conn:
            row = conn.execute(
                certificates.select().where(
                    certificates.c.fingerprint == certificate_fingerprint(certificate)
                )
            ).first()
        return _record(row) if row else None

    def get(self, serial: int, issuer: x509.Name | None = None) -> CertificateRecord:
        """As :meth:`find`, but :class:`UnknownCertificate` when there is none."""
        record = self.find(serial, issuer)
        if record is None:
            raise UnknownCertificate(f"no certificate with serial {serial_hex(serial)} was issued")
        return record

    def revoke(
        self,
        serial: int,
        reason: x509.ReasonFlags,
        when: dt.datetime | None = None,
        issuer: x509.Name | None = None,
    ) -> CertificateRecord:
        """Mark a certificate revoked; revoking twice is an error, not a silent no-op."""
        when = when or dt.datetime.now(dt.UTC)
        record = self.get(serial, issuer)  # one certificate, or AmbiguousSerial
        with self.engine.begin() as conn:
            result = conn.execute(
                certificates.update()
                .where(certificates.c.issuer == record.issuer)
                .where(certificates.c.serial == serial_hex(serial))
                .where(certificates.c.revoked_at.is_(None))
                .values(revoked_at=when, revocation_reason=reason.value)
            )
        if result.rowcount == 0:
            record = self.get(serial, issuer)
            raise AlreadyRevoked(
                f"certificate {serial_hex(serial)} ({record.common_name}) was already revoked "
                f"on {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        return self.get(serial, issuer)

    def revoked(self, ca: str, issuer: x509.Name | None = None) -> list[CertificateRecord]:
        """Every revoked certificate issued by ``ca`` (under the name ``issuer``, if given:
        another PKI's CA of the same role is another issuer), oldest revocation first."""
        query = (
            certificates.select()
            .where(certificates.c.ca == ca)
            .where(certificates.c.revoked_at.is_not(None))
            .order_by(certificates.c.revoked_at)
        )
        if issuer is not None:
            query = query.where(certificates.c.issuer == issuer_key(issuer))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]

    def for_key(self, key_ref: str) -> list[CertificateRecord]:
        """Every certificate issued for the key ``key_ref``, oldest first."""
        query = (
            certificates.select()
            .where(certificates.c.key_ref == key_ref)
            .order_by(certificates.c.not_before)
        )
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def all(self, agency: str | None = None) -> list[CertificateRecord]:
        query = certificates.select().order_by(certificates.c.not_before)
        if agency is not None:
            query = query.where(certificates.c.agency_code == agency)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def next_value(self, counter: str) -> int:
        """Atomically increment and return a named counter (CRL numbers)."""
        return self.reserve(counter, 1).start

    def reserve(self, counter: str, count: int) -> range:
        """Atomically advance a named counter by ``count`` and return the values it passed
        over, which no other caller (in any process) will ever get."""
        bump = (
            counters.update()
            .where(counters.c.name == counter)
            .values(value=counters.c.value + count)
            .returning(counters.c.value)
        )
        for _ in range(3):
            with self.engine.begin() as conn:
                value = conn.execute(bump).scalar()
            if value is not None:
                return range(int(value) - count + 1, int(value) + 1)
            try:
                with self.engine.begin() as conn:
                    conn.execute(counters.insert().values(name=counter, value=0))
            except sa.exc.IntegrityError:
                pass  # another process created it first; bump it on the next turn
        raise RuntimeError(f"counter {counter} could not be incremented")


class SerialBlocks:
    """Unique serial numbers handed out from blocks reserved in the database.

    RFC 3161 asks a TSA for serial numbers unique to each token, not for consecutive ones.
    Reserving ``block`` numbers per database transaction takes that transaction (and, on
    SQLite, the database write lock) off the path of every token; a block not used up when
    the process stops leaves a gap, never a repeat.
    """

    def __init__(self, store: CertificateStore, counter: str, block: int = 1000) -> None:
        self._store = store
        self._counter = counter
        self._block = block
        self._lock = threading.Lock()
        self._left: Iterator[int] = iter(())

    def __call__(self) -> int:
        with self._lock:
            value = next(self._left, None)
            if value is None:
                self._left = iter(self._store.reserve(self._counter, self._block))
                value = next(self._left)
            return value
