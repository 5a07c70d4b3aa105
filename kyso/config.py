"""Configuration from the environment, overridable by CLI options.

| variable               | default                        | meaning                          |
|------------------------|--------------------------------|----------------------------------|
| KYSO_DATA              | var                            | data directory                   |
| KYSO_DB                | sqlite:///$KYSO_DATA/kyso.sqlite | database URL (or postgresql://…) |
| KYSO_PKI               | $KYSO_DATA/pki                 | PKI directory                    |
| KYSO_PASSPHRASE        | –                              | passphrase of the PKI's keys     |
| KYSO_PASSPHRASE_FILE   | –                              | file holding that passphrase     |
| KYSO_PKCS11_PIN        | –                              | user PIN of a PKCS#11 token      |
| KYSO_PKCS11_MODULE     | SoftHSM2's module              | PKCS#11 library                  |
| KYSO_SECRET_KEY        | generated into $KYSO_DATA/secrets/flask-secret | session signing key |
| KYSO_SECURE_COOKIES    | 0                              | 1: cookies only over HTTPS       |
| KYSO_MAX_UPLOAD_MB     | 110                            | largest request body (MiB)       |
| KYSO_VERIFY_RATE       | 300                            | anonymous verifications/min/IP   |
| KYSO_PUSH_ALLOW        | – (no push endpoint allowed)   | push endpoints agencies may use: |
|                        |                                | host names, *.suffixes, networks |
| KYSO_LOGIN_ADDRESS_LIMIT | 50                         | failed logins from one address   |
|                        |                                | in 15 min that lock it 15 min    |
| KYSO_CLIENT_ADDRESS_HEADER | –                          | header with the client's address |
|                        |                                | set by the reverse proxy         |
| KYSO_TRUSTED_PROXIES   | 127.0.0.0/8,::1                | proxies trusted to set it        |
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from certs.egress import DENY_ALL, EgressPolicy, InvalidEgressRule
from exchange.config import networks
from exchange.errors import BadRequest

from .errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name) or default))
    except ValueError:
        return default


def _egress(name: str) -> EgressPolicy:
    """An allow-list setting; a malformed entry stops the start (it must not widen or vanish)."""
    try:
        return EgressPolicy.parse(os.environ.get(name, ""))
    except InvalidEgressRule as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


def _networks(name: str, default: tuple[Network, ...]) -> tuple[Network, ...]:
    """The networks of ``name`` (parsed as ``KYSO_CLIENT_CERT_PROXIES`` is), else ``default``."""
    try:
        return networks(name, os.environ.get(name)) or default
    except BadRequest as exc:
        raise InvalidRequest(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    pki_dir: Path
    secure_cookies: bool = False
    max_upload_mb: int = 110
    verify_rate_per_minute: int = 300
    push_allow: EgressPolicy = DENY_ALL
    login_address_limit: int = 50
    # The client's address is read from this header only on connections from these networks.
    client_address_header: str | None = None
    trusted_proxies: tuple[Network, ...] = LOOPBACK

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def load(
        cls, data: str | None = None, db: str | None = None, pki: str | None = None
    ) -> Settings:
        data_dir = Path(data or os.environ.get("KYSO_DATA") or "var")
        db_url = db or os.environ.get("KYSO_DB") or f"sqlite:///{data_dir / 'kyso.sqlite'}"
        pki_dir = Path(pki or os.environ.get("KYSO_PKI") or data_dir / "pki")
        return cls(
            data_dir,
            db_url,
            pki_dir,
            secure_cookies=_flag("KYSO_SECURE_COOKIES"),
            max_upload_mb=_int("KYSO_MAX_UPLOAD_MB", 110),
            verify_rate_per_minute=_int("KYSO_VERIFY_RATE", 300),
            push_allow=_egress("KYSO_PUSH_ALLOW"),
            login_address_limit=_int("KYSO_LOGIN_ADDRESS_LIMIT", 50),
            client_address_header=os.environ.get("KYSO_CLIENT_ADDRESS_HEADER", "").strip() or None,
            trusted_proxies=_networks("KYSO_TRUSTED_PROXIES", LOOPBACK),
        )
