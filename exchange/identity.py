"""Who may call Kyso: one table of credentials, one :class:`Principal`, one way to authenticate.

A credential has a :class:`Kind`:

* **bearer** — an API token (``kyso_`` + 32 random bytes) for ``/api/v1/sign…``. The table keeps
  its SHA-256; it grants the agency's seal keys it lists (``key_refs``) at a request rate.
* **hmac** — an API key (``ak_…``, public) and a secret for the relay's request signatures
  (:func:`exchange.wire.sign_request`). The table keeps the secret's SHA-256 and the secret
  sealed with AES-256-GCM (the relay must recover it to check an HMAC; a copy of the database
  alone is not enough to forge requests).
* **certificate** — a TLS client certificate the PKI issued to an agency. The PKI's own record
  is the credential: any such certificate, unrevoked and valid, authenticates its agency.
  Registering one here (its DER's SHA-256) names it, lists it and lets an admin revoke it for
  the relay without revoking it at the CA.

A signed-in web account is a principal too, of kind ``web`` (never stored here:
``kyso.accounts`` builds the same :class:`Principal` from the session's account).

:meth:`Credentials.authenticate` is the only way a request is identified: from its
Authorization header or its client certificate, it returns a :class:`Principal` or raises
:class:`~exchange.errors.Unauthenticated` saying why (the refusal counter's reason). Every
secret is compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from certs.clock import as_utc as utc
from certs.clock import utcnow
from certs.store import CertificateRecord, serial_hex
from directory.db import metadata
from directory.store import AgencyStore

from .errors import BadRequest, ExchangeError, Forbidden, Refusal, Unauthenticated
from .store import nonces
from .wire import SCHEME, body_digest, canonical_request
from .writegate import write_gate

WINDOW = dt.timedelta(minutes=5)
KEY_ID = re.compile(r"^ak_[0-9a-f]{16}$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TOKEN_PREFIX = "kyso_"  # noqa: S105 - a prefix that secret scanners can recognise
MAX_TOKEN_LENGTH = 200
AGENCY_PROFILES = ("seal", "person")  # the certificate profiles that may authenticate an agency
_LAST_USED_EVERY = dt.timedelta(minutes=1)


class UnknownCredential(ExchangeError, LookupError):
    """No credential has this id."""


class Kind(StrEnum):
    BEARER = "bearer"  # an API token: Authorization: Bearer kyso_…
    HMAC = "hmac"  # an API key whose secret signs each request
    CERTIFICATE = "certificate"  # a TLS client certificate issued by the PKI
    WEB = "web"  # a signed-in account of the web pages (not stored in the table)


class Role(StrEnum):
    AGENCY = "agency"  # an agency's system or clerk: signs, sends, receives, acknowledges
    ADMIN = "admin"  # edits the directory, sees dead letters, reads the audit log
    AUDITOR = "auditor"  # reads everything, changes nothing


credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # Not a foreign key: tokens predating the rule may name agencies no longer in the directory.
    sa.Column("agency_code", sa.String(32), index=True),
    sa.Column("label", sa.Text, nullable=False, server_default=""),
    # SHA-256 of the secret (bearer, hmac) or of the certificate's DER (certificate).
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_sealed", sa.LargeBinary),  # hmac only: the relay must recover the secret
    sa.Column("key_refs", sa.Text, nullable=False, server_default="[]"),  # bearer: granted keys
    sa.Column("rate_per_minute", sa.Integer),  # bearer: requests a minute
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Principal:
    """Who made a request: the one answer of every way to authenticate.

    ``agency`` is set for :attr:`Role.AGENCY` only (the relay filters what others read by it);
    ``key_refs`` and ``rate_per_minute`` are a bearer token's grant, or an account's keys.
    """

    role: Role
    agency: str | None
    credential_id: str | None = None
    kind: Kind = Kind.HMAC
    key_refs: tuple[str, ...] = ()
    rate_per_minute: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "kind", Kind(self.kind))

    @property
    def name(self) -> str:
        return self.agency or self.credential_id or self.role.value

    @property
    def agency_code(self) -> str | None:
        """The agency it signs for (what :class:`kyso.signing.SigningService` reads)."""
        return self.agency

    @property
    def in_person(self) -> bool:
        """A person signed in, not a system: only then may a personal key be used."""
        return self.kind is Kind.WEB

    @property
    def reads_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.AUDITOR)

    def require_agency(self) -> str:
        if self.role is not Role.AGENCY or self.agency is None:
            raise Forbidden("only an agency's system may do this")
        return self.agency


@dataclass(frozen=True)
class Credential:
    """A credential as stored (never its secret)."""

    id: str
    kind: Kind
    role: Role
    agency: str | None
    label: str
    digest: str
    key_refs: tuple[str, ...]
    rate_per_minute: int | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def key_id(self) -> str:
        return self.id

    @property
    def secret_sha256(self) -> str:
        return self.digest

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Presented:
    """What a request shows: its Authorization header or client certificate (PEM or DER), and
    for a signed request what the signature covers."""

    authorization: str | None = None
    certificate: bytes | None = None
    method: str = "GET"
    path: str = "/"
    query: str = ""
    body: bytes = b""


class CertificateFinder(Protocol):
    def find(self, serial: int) -> CertificateRecord | None: ...

    def find_certificate(self, certificate: x509.Certificate) -> CertificateRecord | None: ...


ALL_KINDS = frozenset({Kind.BEARER, Kind.HMAC, Kind.CERTIFICATE})
_HOW = {
    Kind.BEARER: "Authorization: Bearer kyso_…",
    Kind.HMAC: "the Kyso-HMAC-SHA256 authorization scheme",
    Kind.CERTIFICATE: "a client certificate",
}
_HOW_MISSING = {
    Kind.BEARER: "an API token (Authorization: Bearer kyso_…)",
    Kind.HMAC: "a Kyso-HMAC-SHA256 Authorization header (API key and request signature)",
    Kind.CERTIFICATE: "a TLS client certificate",
}


def _ways(accept: Iterable[Kind], how: dict[Kind, str]) -> str:
    return " or ".join(how[k] for k in sorted(accept, key=list(Kind).index))


def digest(secret: str | bytes) -> str:
    """The SHA-256 (hex) the table keeps of a secret or a certificate's DER."""
    data = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()


def parse_authorization(value: str) -> dict[str, str]:
    """The fields of a ``Kyso-HMAC-SHA256`` Authorization header."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != SCHEME:
        raise Unauthenticated(
            f"use the {SCHEME} authorization scheme or a client certificate", Refusal.MALFORMED
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if not sep:
            raise Unauthenticated("malformed Authorization header", Refusal.MALFORMED)
        fields[name] = val
    for name in ("Credential", "Timestamp", "Nonce", "Signature"):
        if name not in fields:
            raise Unauthenticated(f"the Authorization header lacks {name}", Refusal.MALFORMED)
    return fields


def _scheme(authorization: str) -> Kind | None:
    scheme = authorization.strip().partition(" ")[0]
    if scheme.lower() == "bearer":
        return Kind.BEARER
    return Kind.HMAC if scheme == SCHEME else None


class Credentials:
    """The credential table: issues, lists and revokes credentials, and authenticates requests.

    ``key`` seals HMAC secrets (without it, HMAC keys can be neither issued nor checked);
    ``certificates`` are the PKI's records (without them, no client certificate is accepted).
    """

    def __init__(
        self,
        engine: sa.Engine,
        key: bytes | None = None,
        certificates: CertificateFinder | None = None,
        window: dt.timedelta = WINDOW,
    ) -> None:
        self.engine = engine
        self._aead = AESGCM(key) if key is not None else None
        self.certificates = certificates
        self.window = window
        self._secrets: dict[str, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()
        self._last_purge = 0.0

    # -- issuing -------------------------------------------------------------------------------

    def issue_token(
        self, agency: str, key_refs: tuple[str, ...], label: str, rate_per_minute: int
    ) -> tuple[Credential, str]:
        """A bearer token for ``agency``'s ``key_refs`` and its secret (shown once). Whether the
        keys may be granted is the caller's check (``kyso.tokens.check_token_keys``)."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": "tk_" + secrets.token_hex(6),
            "kind": Kind.BEARER.value,
            "role": Role.AGENCY.value,
            "agency_code": agency,
            "label": label.strip() or f"token of {agency}",
            "digest": digest(secret),
            "key_refs": json.dumps(list(key_refs)),
            "rate_per_minute": rate_per_minute,
        }
        return self._insert(row), secret

    def issue_key(
        self, role: Role, agency: str | None = None, label: str = ""
    ) -> tuple[Credential, str]:
        """An HMAC API key and its secret (shown once, stored hashed and sealed)."""
        if role is Role.AGENCY:
            if not agency:
                raise BadRequest("an agency credential needs the agency's code")
            AgencyStore(self.engine).get(agency)
        elif agency:
            raise BadRequest(f"{role} credentials are not bound to an agency")
        key_id = "ak_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._sealer().encrypt(nonce, secret.encode(), key_id.encode())
        row = {
            "id": key_id,
            "kind": Kind.HMAC.value,
            "role": role.value,
            "agency_code": agency,
            "label": label,
            "digest": digest(secret),
            "secret_sealed": sealed,
        }
        return self._insert(row), secret

    def register_certificate(self, serial: int, label: str = "") -> Credential:
        """Name a client certificate the PKI issued to an agency (so that it can be listed and
        revoked for the relay alone)."""
        record = self._finder().find(serial)
        if record is None or record.agency_code is None or record.profile not in AGENCY_PROFILES:
            raise BadRequest(f"certificate {serial:X} is not one the PKI issued to an agency")
        row = {
            "id": "cc_" + secrets.token_hex(8),
            "kind": Kind.CERTIFICATE.value,
            "role": Role.AGENCY.value,
            "agency_code": record.agency_code,
            "label": label or record.common_name,
            "digest": digest(record.der),
        }
        return self._insert(row)

    def _insert(self, row: Mapping[str, object]) -> Credential:
        with write_gate(self.engine), self.engine.begin() as conn:
            conn.execute(credentials.insert().values(**row, created_at=utcnow()))
        return self.get(str(row["id"]))

    # -- reading, revoking ---------------------------------------------------------------------

    def get(self, credential_id: str) -> Credential:
        with self.engine.connect() as conn:
            row = conn.execute(
                credentials.select().where(credentials.c.id == credential_id)
            ).first()
        if row is None:
            raise UnknownCredential(f"no credential {credential_id}")
        return _credential(row)

    def all(
        self, agency: str | None = None, kinds: Iterable[Kind] = ALL_KINDS, active: bool = False
    ) -> list[Credential]:
        """Credentials in the order they were made (only unrevoked ones if ``active``)."""
        query = (
            credentials.select()
            .where(credentials.c.kind.in_([k.value for k in kinds]))
            .order_by(credentials.c.created_at, credentials.c.id)
        )
        if agency is not None:
            query = query.where(credentials.c.agency_code == agency)
        if active:
            query = query.where(credentials.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_credential(r) for r in conn.execute(query).all()]

    def revoke(self, credential_id: str) -> Credential:
        """Revoke at once (revoking twice keeps the first moment)."""
        with write_gate(self.engine), self.engine.begin() as conn:
            conn.execute(
                credentials.update()
                .where(credentials.c.id == credential_id)
                .where(credentials.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        with self._lock:
            self._secrets.pop(credential_id, None)
        return self.get(credential_id)

    def agency_key(self, agency: str) -> str | None:
        """The newest active HMAC key of ``agency`` (which signs its push notifications)."""
        query = (
            sa.select(credentials.c.id)
            .where(credentials.c.kind == Kind.HMAC.value)
            .where(credentials.c.agency_code == agency)
            .where(credentials.c.revoked_at.is_(None))
            .order_by(credentials.c.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return str(value) if value is not None else None

    def secret(self, key_id: str) -> str:
        """The secret of an HMAC key (for signing push notifications to its agency)."""
        row = self._row(key_id, Kind.HMAC)
        if row is None:
            raise Unauthenticated("unknown credential", Refusal.UNKNOWN_KEY)
        return self._unseal(key_id, bytes(row.secret_sealed)).decode()

    def _row(self, credential_id: str, kind: Kind) -> sa.Row | None:
        query = credentials.select().where(credentials.c.id == credential_id)
        with self.engine.connect() as conn:
            return conn.execute(query.where(credentials.c.kind == kind.value)).first()

    def _sealer(self) -> AESGCM:
        if self._aead is None:
            raise BadRequest("HMAC keys need the relay's passphrase (their secrets are sealed)")
        return self._aead

    def _finder(self) -> CertificateFinder:
        if self.certificates is None:
            raise BadRequest("client certificates need the PKI's records")
        return self.certificates

    def _unseal(self, key_id: str, sealed: bytes) -> bytes:
        with self._lock:
            cached = self._secrets.get(key_id)
        if cached is not None and cached[0] == sealed:
            return cached[1]
        try:
            secret = self._sealer().decrypt(sealed[:12], sealed[12:], key_id.encode())
        except (InvalidTag, ValueError):  # sealed under another passphrase, tampered, truncated
            raise Unauthenticated(
                "the credential cannot be used with this relay", Refusal.UNKNOWN_KEY
            ) from None
        with self._lock:
            self._secrets[key_id] = (sealed, secret)
        return secret

    # -- authenticating ------------------------------------------------------------------------

    def authenticate(
        self,
        presented: Presented,
        accept: frozenset[Kind] = ALL_KINDS,
        now: dt.datetime | None = None,
    ) -> Principal:
        """Who ``presented`` is, by the one credential it shows (the Authorization header if it
        has one, else its client certificate), if that credential's kind is in ``accept``."""
        now = now or utcnow()
        if presented.authorization:
            kind = _scheme(presented.authorization)
            if kind is None or kind not in accept:
                raise Unauthenticated(f"use {_ways(accept, _HOW)}", Refusal.MALFORMED)
            if kind is Kind.BEARER:
                return self._bearer(presented.authorization, now)
            return self._hmac(presented, now)
        if presented.certificate is not None and Kind.CERTIFICATE in accept:
            return self._certificate(presented.certificate, now)
        raise Unauthenticated(f"authenticate with {_ways(accept, _HOW_MISSING)}", Refusal.MISSING)

    def _bearer(self, authorization: str, now: dt.datetime) -> Principal:
        token = authorization.strip().partition(" ")[2].strip()
        if not token:
            raise Unauthenticated(f"use {_HOW[Kind.BEARER]}", Refusal.MALFORMED)
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the API token is malformed", Refusal.MALFORMED)
        presented = digest(token)
        query = credentials.select().where(credentials.c.digest == presented)
        with self.engine.connect() as conn:
            row = conn.execute(query.where(credentials.c.kind == Kind.BEARER.value)).first()
        if row is None or not hmac.compare_digest(row.digest, presented):
            raise Unauthenticated("the API token is not valid", Refusal.UNKNOWN_KEY)
        if row.revoked_at is not None:
            raise Unauthenticated("the API token was revoked", Refusal.UNKNOWN_KEY)
        self._used(row, now)
        return _principal(row)

    def _used(self, row: sa.Row, now: dt.datetime) -> None:
        """Note the last use, at most once a minute: a write, so through the write gate (other
        processes write the same database)."""
        last = utc(row.last_used_at)
        if last is not None and now - last <= _LAST_USED_EVERY:
            return
        with write_gate(self.engine), self.engine.begin() as conn:
            conn.execute(
                credentials.update().where(credentials.c.id == row.id).values(last_used_at=now)
            )

    def _hmac(self, presented: Presented, now: dt.datetime) -> Principal:
        fields = parse_authorization(presented.authorization or "")
        key_id, nonce = fields["Credential"], fields["Nonce"]
        if not KEY_ID.match(key_id):
            raise Unauthenticated("malformed credential id", Refusal.MALFORMED)
        if not NONCE.match(nonce):
            raise Unauthenticated(
                "the nonce must be 16–64 characters of [A-Za-z0-9_-]", Refusal.MALFORMED
            )
        try:
            moment = dt.datetime.fromtimestamp(int(fields["Timestamp"]), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise Unauthenticated("the timestamp is not a UNIX time", Refusal.MALFORMED) from None
        if abs(now - moment) > self.window:
            raise Unauthenticated(
                f"the request time {moment:%Y-%m-%d %H:%M:%S} UTC is more than "
                f"{int(self.window.total_seconds() // 60)} minutes from the relay's clock",
                Refusal.STALE_TIMESTAMP,
            )
        row = self._row(key_id, Kind.HMAC)
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential", Refusal.UNKNOWN_KEY)
        secret = self._unseal(key_id, bytes(row.secret_sealed))
        message = canonical_request(
            presented.method,
            presented.path,
            presented.query,
            fields["Timestamp"],
            nonce,
            body_digest(presented.body),
        )
        expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"].lower()):
            raise Unauthenticated("the request signature does not verify", Refusal.BAD_SIGNATURE)
        self._use_nonce(key_id, nonce, now)
        return _principal(row)

    def _use_nonce(self, key_id: str, nonce: str, now: dt.datetime) -> None:
        try:
            with write_gate(self.engine), self.engine.begin() as conn:
                conn.execute(nonces.insert().values(key_id=key_id, nonce=nonce, seen_at=now))
        except sa.exc.IntegrityError:
            raise Unauthenticated(
                "replayed request: this nonce was already used", Refusal.REPLAYED_NONCE
            ) from None
        if time.monotonic() - self._last_purge > 60:
            self._last_purge = time.monotonic()
            with write_gate(self.engine), self.engine.begin() as conn:
                conn.execute(nonces.delete().where(nonces.c.seen_at < now - 2 * self.window))

    def _certificate(self, certificate: bytes, now: dt.datetime) -> Principal:
        parsed = _load_certificate(certificate)
        der = parsed.public_bytes(serialization.Encoding.DER)
        # By fingerprint: serials of different CAs collide.
        record = self._finder().find_certificate(parsed)
        if record is None or not hmac.compare_digest(record.der, der):
            raise Unauthenticated(
                "the client certificate was not issued by this relay's PKI", Refusal.BAD_CERTIFICATE
            )
        if record.revoked:
            raise Unauthenticated(
                f"the client certificate {serial_hex(record.serial)} is revoked",
                Refusal.REVOKED_CERTIFICATE,
            )
        if not record.not_before <= now <= record.not_after:
            raise Unauthenticated(
                "the client certificate is expired or not yet valid", Refusal.BAD_CERTIFICATE
            )
        if record.agency_code is None or record.profile not in AGENCY_PROFILES:
            raise Unauthenticated(
                "the client certificate does not belong to an agency", Refusal.BAD_CERTIFICATE
            )
        query = credentials.select().where(credentials.c.digest == digest(der))
        with self.engine.connect() as conn:
            row = conn.execute(query.where(credentials.c.kind == Kind.CERTIFICATE.value)).first()
        if row is not None and row.revoked_at is not None:
            raise Unauthenticated(
                f"the client certificate {serial_hex(record.serial)} may no longer use the relay",
                Refusal.REVOKED_CERTIFICATE,
            )
        return Principal(
            Role.AGENCY, record.agency_code, row.id if row is not None else None, Kind.CERTIFICATE
        )


def _load_certificate(certificate: bytes) -> x509.Certificate:
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError:
        raise Unauthenticated(
            "the client certificate cannot be read", Refusal.BAD_CERTIFICATE
        ) from None


def _principal(row: sa.Row) -> Principal:
    role = Role(row.role)
    return Principal(
        role,
        row.agency_code if role is Role.AGENCY else None,
        row.id,
        Kind(row.kind),
        tuple(json.loads(row.key_refs)),
        row.rate_per_minute,
    )


def _credential(row: sa.Row) -> Credential:
    return Credential(
        id=row.id,
        kind=Kind(row.kind),
        role=Role(row.role),
        agency=row.agency_code,
        label=row.label,
        digest=row.digest,
        key_refs=tuple(json.loads(row.key_refs)),
        rate_per_minute=row.rate_per_minute,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        last_used_at=utc(row.last_used_at),
        revoked_at=utc(row.revoked_at),
    )
