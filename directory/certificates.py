"""Certificates registered to agencies: which seal, and which officers, sign for whom.

A registration ties certificates to one agency, in one of two ways:

- **by fingerprint**: exactly one certificate (SHA-256 of its DER), whoever issued it;
- **by issuer and subject attributes**: every certificate whose issuer is the registered CA's
  name, whose authority key identifier is the registered certificate's (two CAs may share a
  name; they do not share a key), and whose subject carries all the registered attributes
  (for instance ``UID=MST:0101234567``), so a renewed certificate of the same CA still matches.

Each has a role (the agency's ``seal``, or an ``officer`` signing for it) and a validity
period; outside it, the registration matches nothing. It is keyed by the registered
certificate's issuer and serial too, kept for display and audit: serials of different CAs
collide, so a serial alone never identifies a certificate here.

Kyso's own CA registers what it issues automatically (``source`` ``kyso-ca``); an administrator
registers the certificates of licensed CAs (``kyso directory certificate add``). This module
answers "whose is this certificate?" (:meth:`CertificateRegistry.agency_of`); whether the
certificate's chain is trusted and unrevoked is for the verifier to say.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, ObjectIdentifier

from . import DirectoryError, UnknownAgency
from .db import metadata
from .fingerprints import certificate_fingerprint
from .store import agencies

agency_certificates = sa.Table(
    "agency_certificates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("agency", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.String(64), unique=True),
    sa.Column("issuer", sa.Text, nullable=False, index=True),
    sa.Column("serial", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("subject_match", sa.Text),
    sa.Column("issuer_key_id", sa.String(128)),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("valid_until", sa.DateTime(timezone=True)),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

SOURCE_ADMIN = "admin"
SOURCE_KYSO_CA = "kyso-ca"

# Short names an administrator may give for subject attributes (RFC 4514 and Vietnamese CAs' use).
ATTRIBUTE_NAMES: Mapping[str, ObjectIdentifier] = {
    "UID": NameOID.USER_ID,
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAIL": NameOID.EMAIL_ADDRESS,
}


class RegistrationError(DirectoryError):
    """Base class of the registry's errors."""


class RegistrationExists(RegistrationError):
    """That certificate is registered already (to this agency or another)."""


class CertificateIsCA(RegistrationError):
    """A CA's certificate signs certificates, not documents for an agency."""


class UnknownRegistration(RegistrationError, LookupError):
    """No registration has that id."""


class AmbiguousRegistration(RegistrationError):
    """Registrations of different agencies match one certificate: an administrator must
    remove one; the certificate is nobody's until then."""


class Role(enum.Enum):
    """What a registered certificate signs as."""

    SEAL = "seal"
    OFFICER = "officer"


def attribute_oid(name: str) -> ObjectIdentifier:
    """The OID of a subject attribute given by short name (``UID``, ``O``, ``T`` …) or dotted
    form; :class:`RegistrationError` for anything else."""
    oid = ATTRIBUTE_NAMES.get(name.strip().upper())
    if oid is not None:
        return oid
    try:
        return ObjectIdentifier(name.strip())
    except ValueError:
        choices = ", ".join(sorted(ATTRIBUTE_NAMES))
        raise RegistrationError(f"unknown subject attribute {name!r} (one of {choices})") from None


def authority_key_id(certificate: x509.Certificate) -> str | None:
    """The key identifier of ``certificate``'s authorityKeyIdentifier, hex; None without one."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    key_id = extension.value.key_identifier
    return key_id.hex() if key_id else None


def subject_values(name: x509.Name, oid: ObjectIdentifier) -> tuple[str, ...]:
    """Every value of attribute ``oid`` in ``name``, as text."""
    return tuple(str(a.value) for a in name.get_attributes_for_oid(oid))


@dataclass(frozen=True)
class Registration:
    """One certificate (or family of certificates) registered to an agency."""

    id: int
    agency: str
    role: Role
    fingerprint: str | None
    issuer: str
    serial: str
    subject: str
    subject_match: tuple[tuple[str, str], ...]
    issuer_key_id: str | None
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    certificate: x509.Certificate
    source: str
    added_at: dt.datetime

    @property
    def by_fingerprint(self) -> bool:
        return self.fingerprint is not None

    def to_dict(self) -> dict[str, object]:
        """The registration as JSON (for the audit log, the API and the web pages)."""
        return {
            "id": self.id,
            "agency": self.agency,
            "role": self.role.value,
            "fingerprint": self.fingerprint,
            "issuer": self.issuer,
            "serial": self.serial,
            "subject": self.subject,
            "subject_match": [list(pair) for pair in self.subject_match],
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "source": self.source,
        }

    def valid_at(self, at: dt.datetime) -> bool:
        """Whether the registration is in force at ``at``."""
        return self.valid_from <= at and (self.valid_until is None or at <= self.valid_until)

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` is one this registration names (validity aside)."""
        if self.fingerprint is not None:
            return certificate_fingerprint(certificate) == self.fingerprint
        if certificate.issuer.rfc4514_string() != self.issuer:
            return False
        if self.issuer_key_id is not None and authority_key_id(certificate) != self.issuer_key_id:
            return False
        return all(
            value in subject_values(certificate.subject, ObjectIdentifier(oid))
            for oid, value in self.subject_match
        )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite gives naive datetimes back; every time Kyso writes is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _registration(row: sa.Row) -> Registration:
    match = json.loads(row.subject_match) if row.subject_match else []
    return Registration(
        id=row.id,
        agency=row.agency,
        role=Role(row.role),
        fingerprint=row.fingerprint,
        issuer=row.issuer,
        serial=row.serial,
        subject=row.subject,
        subject_match=tuple((oid, value) for oid, value in match),
        issuer_key_id=row.issuer_key_id,
        valid_from=_utc(row.valid_from),  # type: ignore[arg-type]
        valid_until=_utc(row.valid_until),
        certificate=x509.load_der_x509_certificate(row.der),
        source=row.source,
        added_at=_utc(row.added_at),  # type: ignore[arg-type]
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _check_agency(conn: sa.Connection, code: str) -> None:
    known = conn.execute(sa.select(agencies.c.code).where(agencies.c.code == code)).first()
    if known is None:
        raise UnknownAgency(f"unknown agency {code}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateRegistry:
    """The registrations, in the Kyso database: register, remove, list, and whose a
    certificate is."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def register(
        self,
        agency: str,
        certificate: x509.Certificate,
        role: Role = Role.SEAL,
        *,
        by_subject: Iterable[str] = (),
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
        source: str = SOURCE_ADMIN,
        at: dt.datetime | None = None,
    ) -> Registration:
        """Register ``certificate`` to ``agency``.

        Without ``by_subject``, the registration is this one certificate (its fingerprint),
        valid by default as long as the certificate is. With ``by_subject`` (attribute names
        such as ``UID``), it is every certificate of the same issuer whose subject carries
        those attributes with ``certificate``'s values, valid by default from now on.

        Raises :class:`directory.UnknownAgency`, :class:`RegistrationExists` (the fingerprint,
        or the same issuer and attributes, is registered already), :class:`CertificateIsCA`,
        :class:`RegistrationError` (an attribute the certificate lacks; an inverted period).
        """
        now = at or _now()
        if _is_ca(certificate):
            raise CertificateIsCA("a CA's certificate signs certificates, not for an agency")
        match = self._subject_match(certificate, by_subject)
        if match:
            valid_from = valid_from or now
        else:
            valid_from = valid_from or certificate.not_valid_before_utc
            valid_until = valid_until or certificate.not_valid_after_utc
        if valid_until is not None and valid_until <= valid_from:
            raise RegistrationError("the registration would end before it begins")
        values = {
            "agency": agency,
            "role": role.value,
            "fingerprint": None if match else certificate_fingerprint(certificate),
            "issuer": certificate.issuer.rfc4514_string(),
            "serial": format(certificate.serial_number, "X"),
            "subject": certificate.subject.rfc4514_string(),
            "subject_match": json.dumps(match, ensure_ascii=False) if match else None,
            "issuer_key_id": authority_key_id(certificate) if match else None,
            "valid_from": valid_from,
            "valid_until": valid_until,
            "der": certificate.public_bytes(serialization.Encoding.DER),
            "source": source,
            "added_at": now,
        }
        with self.engine.begin() as conn:
            self._check_new(conn, values)
            new_id = conn.execute(
                agency_certificates.insert().values(**values).returning(agency_certificates.c.id)
            ).scalar_one()
        return self.get(new_id)

    @staticmethod
    def _subject_match(
        certificate: x509.Certificate, by_subject: Iterable[str]
    ) -> list[tuple[str, str]]:
        match: list[tuple[str, str]] = []
        for name in by_subject:
            oid = attribute_oid(name)
            values = subject_values(certificate.subject, oid)
            if not values:
                raise RegistrationError(f"the certificate's subject has no {name} attribute")
            match.extend((oid.dotted_string, value) for value in values)
        return sorted(set(match))

    @staticmethod
    def _check_new(conn: sa.Connection, values: Mapping[str, object]) -> None:
        _check_agency(conn, str(values["agency"]))
        table = agency_certificates.c
        if values["fingerprint"] is not None:
            same = table.fingerprint == values["fingerprint"]
        else:
            same = (table.issuer == values["issuer"]) & (
                table.subject_match == values["subject_match"]
            )
        clash = conn.execute(sa.select(table.id, table.agency).where(same)).first()
        if clash is not None:
            raise RegistrationExists(
                f"the certificate is registered already (#{clash.id}, to {clash.agency})"
            )

    def check_agency(self, code: str) -> None:
        """:class:`directory.UnknownAgency` unless the directory holds ``code``."""
        with self.engine.connect() as conn:
            _check_agency(conn, code)

    def get(self, registration_id: int) -> Registration:
        """The registration ``registration_id``; :class:`UnknownRegistration` if none."""
        with self.engine.connect() as conn:
            row = conn.execute(
                agency_certificates.select().where(agency_certificates.c.id == registration_id)
            ).first()
        if row is None:
            raise UnknownRegistration(f"no certificate registration #{registration_id}")
        return _registration(row)

    def remove(self, registration_id: int) -> Registration:
        """Delete a registration; returns what it was (for the audit log)."""
        removed = self.get(registration_id)
        with self.engine.begin() as conn:
            conn.execute(
                agency_certificates.delete().where(agency_certificates.c.id == registration_id)
            )
        return removed

    def all(self, agency: str | None = None) -> list[Registration]:
        """Every registration (of ``agency`` only, if given), by agency then id."""
        query = agency_certificates.select().order_by(
            agency_certificates.c.agency, agency_certificates.c.id
        )
        if agency is not None:
            query = query.where(agency_certificates.c.agency == agency)
        with self.engine.connect() as conn:
            return [_registration(row) for row in conn.execute(query).all()]

    def agency_of(
        self, certificate: x509.Certificate, at: dt.datetime | None = None
    ) -> Registration | None:
        """The registration in force at ``at`` (now) that names ``certificate``, or None.

        A fingerprint registration wins over an issuer-and-subject one. Raises
        :class:`AmbiguousRegistration` when registrations of two agencies match equally.
        """
        at = at or _now()
        table = agency_certificates.c
        query = agency_certificates.select().where(
            (table.fingerprint == certificate_fingerprint(certificate))
            | (table.fingerprint.is_(None) & (table.issuer == certificate.issuer.rfc4514_string()))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(table.id)).all()
        found = [r for r in map(_registration, rows) if r.valid_at(at) and r.matches(certificate)]
        for exact in (True, False):
            tier = [r for r in found if r.by_fingerprint is exact]
            if len({r.agency for r in tier}) > 1:
                agencies_found = ", ".join(sorted({r.agency for r in tier}))
                raise AmbiguousRegistration(
                    f"{certificate.subject.rfc4514_string()} is registered to {agencies_found}"
                )
            if tier:
                return tier[0]
        return None

    def is_registered_to(
        self,
        certificate: x509.Certificate,
        agency: str,
        at: dt.datetime | None = None,
        role: Role | None = None,
    ) -> bool:
        """Whether ``certificate`` is ``agency``'s at ``at`` (in ``role``, if given)."""
        try:
            found = self.agency_of(certificate, at)
        except AmbiguousRegistration:
            return False
        return found is not None and found.agency == agency and role in (None, found.role)
