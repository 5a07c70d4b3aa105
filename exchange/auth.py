"""How agency systems (and admins, auditors) authenticate to the relay.

Two ways, either is enough:

* **API key + request signature.** A credential is a key id (``ak_…``, public) and a secret
  (32 random bytes, shown once). Every request carries ::

      Authorization: Kyso-HMAC-SHA256 Credential=ak_…, Timestamp=UNIX, Nonce=N, Signature=HEX

  where the signature is HMAC-SHA256 with the secret over
  :func:`exchange.wire.canonical_request` (method, path, query, timestamp, nonce, SHA-256 of
  the body; clients sign with :func:`exchange.wire.sign_request`). The timestamp must be
  within five minutes of the relay's clock and a nonce is accepted once per key (kept in the
  database, so a restart does not reopen the window). The secret itself never travels. The database
  keeps its SHA-256 and the secret sealed with AES-256-GCM under a key derived (scrypt) from
  the relay's passphrase: the relay must recover the secret to check an HMAC, and a copy of the
  database alone is not enough to forge requests.
* **TLS client certificate (mTLS)**, when a TLS terminator in front of Kyso verified it and
  hands it over (WSGI ``SSL_CLIENT_CERT`` or a configured header). The certificate must be one
  the PKI issued to the agency (same DER), unrevoked and within its validity.

Either way, the authenticated agency is the only sender a request may speak for.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from certs.clock import utcnow
from certs.store import CertificateStore, serial_hex
from directory import UnknownAgency

from .errors import BadRequest, Forbidden, Refusal, Unauthenticated
from .store import AgencyStore, credentials, nonces, utc
from .wire import SCHEME, body_digest, canonical_request
from .writegate import write_gate

WINDOW = dt.timedelta(minutes=5)
KEY_ID = re.compile(r"^ak_[0-9a-f]{16}$")
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
AGENCY_PROFILES = ("seal", "person")


class Role(StrEnum):
    AGENCY = "agency"  # an agency's document system: sends, receives, acknowledges
    ADMIN = "admin"  # edits the directory, sees dead letters, reads the audit log
    AUDITOR = "auditor"  # reads everything, changes nothing


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    role: Role
    agency: str | None
    key_id: str | None = None
    method: str = "hmac"  # or "mtls"

    @property
    def name(self) -> str:
        return self.agency or self.key_id or self.role.value

    def require_agency(self) -> str:
        if self.role is not Role.AGENCY or self.agency is None:
            raise Forbidden("only an agency's system may do this")
        return self.agency

    @property
    def reads_everything(self) -> bool:
        return self.role in (Role.ADMIN, Role.AUDITOR)


@dataclass(frozen=True)
class Credential:
    key_id: str
    role: Role
    agency: str | None
    label: str
    secret_sha256: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def parse_authorization(value: str) -> dict[str, str]:
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


def sealing_key(passphrase: bytes, installation: bytes) -> bytes:
    """The AES key that seals credential secrets (scrypt, once per process)."""
    salt = hashlib.sha256(b"kyso-exchange-credentials\n" + installation).digest()
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase)


def installation_id(root_certificate: x509.Certificate) -> bytes:
    """What makes one Kyso installation's sealing key differ from another's: its root CA."""
    return root_certificate.fingerprint(hashes.SHA256())


class Authenticator:
    """Issues credentials and checks requests."""

    def __init__(
        self,
        engine: sa.Engine,
        key: bytes,
        certificates: CertificateStore,
        window: dt.timedelta = WINDOW,
    ) -> None:
        self.engine = engine
        self._aead = AESGCM(key)
        self.certificates = certificates
        self.window = window
        self._secrets: dict[str, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()
        self._last_purge = 0.0

    # -- credentials --

    def issue(
        self, role: Role, agency: str | None = None, label: str = ""
    ) -> tuple[Credential, str]:
        """A new credential and its secret (shown once, never stored in clear)."""
        if role is Role.AGENCY:
            if not agency:
                raise BadRequest("an agency credential needs the agency's code")
            AgencyStore(self.engine).get(agency)
        elif agency:
            raise BadRequest(f"{role} credentials are not bound to an agency")
        key_id = "ak_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), key_id.encode())
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                credentials.insert().values(
                    key_id=key_id,
                    role=role.value,
                    agency_code=agency,
                    label=label,
                    secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
                    secret_sealed=sealed,
                    created_at=now,
                )
            )
        return self.get(key_id), secret

    def get(self, key_id: str) -> Credential:
        with self.engine.connect() as conn:
            row = conn.execute(credentials.select().where(credentials.c.key_id == key_id)).first()
        if row is None:
            raise UnknownAgency(f"no credential {key_id}")
        return _credential(row)

    def all(self, agency: str | None = None) -> list[Credential]:
        query = credentials.select().order_by(credentials.c.created_at)
        if agency is not None:
            query = query.where(credentials.c.agency_code == agency)
        with self.engine.connect() as conn:
            return [_credential(r) for r in conn.execute(query).all()]

    def revoke(self, key_id: str) -> Credential:
        with self.engine.begin() as conn:
            conn.execute(
                credentials.update()
                .where(credentials.c.key_id == key_id)
                .where(credentials.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        with self._lock:
            self._secrets.pop(key_id, None)
        return self.get(key_id)

    def secret(self, key_id: str) -> str:
        """The secret of a credential (for signing push notifications to its agency)."""
        with self.engine.connect() as conn:
            row = conn.execute(credentials.select().where(credentials.c.key_id == key_id)).first()
        if row is None:
            raise Unauthenticated("unknown credential", Refusal.UNKNOWN_KEY)
        return self._unseal(key_id, bytes(row.secret_sealed)).decode()

    def _unseal(self, key_id: str, sealed: bytes) -> bytes:
        with self._lock:
            cached = self._secrets.get(key_id)
        if cached is not None and cached[0] == sealed:
            return cached[1]
        try:
            secret = self._aead.decrypt(sealed[:12], sealed[12:], key_id.encode())
        except Exception:  # InvalidTag: sealed under another passphrase, or tampered with
            raise Unauthenticated(
                "the credential cannot be used with this relay", Refusal.UNKNOWN_KEY
            ) from None
        with self._lock:
            self._secrets[key_id] = (sealed, secret)
        return secret

    # -- requests --

    def authenticate_hmac(
        self,
        authorization: str,
        method: str,
        path: str,
        query: str,
        body: bytes,
        now: dt.datetime | None = None,
    ) -> Principal:
        """Check a signed request; :class:`Unauthenticated` says why it fails."""
        fields = parse_authorization(authorization)
        key_id, nonce = fields["Credential"], fields["Nonce"]
        if not KEY_ID.match(key_id):
            raise Unauthenticated("malformed credential id", Refusal.MALFORMED)
        if not NONCE.match(nonce):
            raise Unauthenticated(
                "the nonce must be 16–64 characters of [A-Za-z0-9_-]", Refusal.MALFORMED
            )
        now = now or utcnow()
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
        with self.engine.connect() as conn:
            row = conn.execute(credentials.select().where(credentials.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential", Refusal.UNKNOWN_KEY)
        secret = self._unseal(key_id, bytes(row.secret_sealed))
        message = canonical_request(
            method, path, query, fields["Timestamp"], nonce, body_digest(body)
        )
        expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"].lower()):
            raise Unauthenticated("the request signature does not verify", Refusal.BAD_SIGNATURE)
        self._use_nonce(key_id, nonce, now)
        return Principal(Role(row.role), row.agency_code, key_id, "hmac")

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

    def authenticate_certificate(
        self, certificate: bytes | str, now: dt.datetime | None = None
    ) -> Principal:
        """A TLS client certificate (PEM or DER) the PKI issued to an agency."""
        try:
            if isinstance(certificate, str) or certificate.lstrip().startswith(b"-----BEGIN"):
                data = certificate.encode() if isinstance(certificate, str) else certificate
                parsed = x509.load_pem_x509_certificate(data)
            else:
                parsed = x509.load_der_x509_certificate(certificate)
        except ValueError:
            raise Unauthenticated(
                "the client certificate cannot be read", Refusal.BAD_CERTIFICATE
            ) from None
        record = self.certificates.find(parsed.serial_number)
        der = parsed.public_bytes(serialization.Encoding.DER)
        if record is None or not hmac.compare_digest(record.der, der):
            raise Unauthenticated(
                "the client certificate was not issued by this relay's PKI", Refusal.BAD_CERTIFICATE
            )
        now = now or utcnow()
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
        return Principal(Role.AGENCY, record.agency_code, None, "mtls")


def _credential(row: sa.Row) -> Credential:
    return Credential(
        key_id=row.key_id,
        role=Role(row.role),
        agency=row.agency_code,
        label=row.label,
        secret_sha256=row.secret_sha256,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        revoked_at=utc(row.revoked_at),
    )


def decode_client_certificate(value: str) -> bytes:
    """A certificate handed over by a TLS terminator: PEM, URL-escaped PEM or base64 DER."""
    from urllib.parse import unquote

    text = unquote(value.strip()) if "%" in value else value.strip()
    if "-----BEGIN" in text:
        # Some proxies fold the PEM onto one line with spaces for newlines.
        body = text.split("-----")[2] if text.count("-----") >= 4 else ""
        if body and "\n" not in body.strip():
            text = (
                "-----BEGIN CERTIFICATE-----\n"
                + "\n".join(body.split())
                + "\n-----END CERTIFICATE-----\n"
            )
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated(
            "the client certificate header cannot be read", Refusal.BAD_CERTIFICATE
        ) from None


def from_networks(
    address: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether the peer ``address`` (the socket's, never a forwarded header) is in ``networks``."""
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(peer in network for network in networks)
