"""Configuration from the environment, overridable by CLI options: the one module of Kyso that
reads environment variables (``tests/test_layers.py`` checks that no other does). Domain code
(``signer``, ``certs``, ``exchange``) gets what it needs from here as arguments.

| variable               | default                        | meaning                          |
|------------------------|--------------------------------|----------------------------------|
| KYSO_DATA              | var                            | data directory                   |
| KYSO_DB                | sqlite:///$KYSO_DATA/kyso.sqlite | database URL (or postgresql://…) |
| KYSO_PKI               | $KYSO_DATA/pki                 | PKI directory                    |
| KYSO_PASSPHRASE        | –                              | passphrase of the PKI's keys     |
| KYSO_PASSPHRASE_FILE   | –                              | file holding that passphrase     |
| KYSO_PKCS11_PIN        | –                              | user PIN of a PKCS#11 token      |
| KYSO_PKCS11_MODULE     | SoftHSM2's module              | PKCS#11 library                  |
| KYSO_STAMP_FONT        | Noto Serif Regular             | font of visible signatures' text |
| KYSO_SECRET_KEY        | generated into $KYSO_DATA/secrets/flask-secret | session signing key |
| KYSO_SECURE_COOKIES    | 0                              | 1: cookies only over HTTPS       |
| KYSO_MAX_UPLOAD_MB     | 110                            | largest request body (MiB)       |
| KYSO_VERIFY_RATE       | 300                            | anonymous verifications/min/IP   |
| KYSO_PUSH_ALLOW        | – (no push endpoint allowed)   | push endpoints agencies may use: |
|                        |                                | host names, *.suffixes, networks |
| KYSO_REVOCATION_ALLOW  | * (any name, no special address) | where OCSP / CRL URLs of   |
|                        |                                | certificates may be fetched from |
| KYSO_LOGIN_ADDRESS_LIMIT | 50                         | failed logins from one address   |
|                        |                                | in 15 min that lock it 15 min    |
| KYSO_CLIENT_ADDRESS_HEADER | –                          | header with the client's address |
|                        |                                | set by the reverse proxy         |
| KYSO_TRUSTED_PROXIES   | 127.0.0.0/8,::1                | proxies trusted to set it        |
| KYSO_URL               | the PKI's base URL             | relay URL of `kyso send` & co.   |

The relay (:class:`exchange.config.RelayConfig`, in ``Settings.relay``):

| variable                     | default   | meaning                                          |
|------------------------------|-----------|--------------------------------------------------|
| KYSO_ROUTING                 | built-in  | routing rules file (see exchange/routing.py)     |
| KYSO_EXCHANGE_MAX_BYTES      | 52428800  | largest package request (body) accepted          |
| KYSO_DEAD_LETTER_AFTER       | 86400     | seconds of failed push attempts before dead letter|
| KYSO_PUSH_BASE_DELAY         | 1         | first push retry delay, seconds (doubles, jitter) |
| KYSO_PUSH_MAX_DELAY          | 3600      | longest push retry delay, seconds                |
| KYSO_AUDIT_CHECKPOINT_EVERY  | 60        | seconds between TSA checkpoints of the audit log |
| KYSO_REQUIRE_SIGNED_PDF      | 1         | refuse PDF attachments without a signature       |
| KYSO_CLIENT_CERT_HEADER      | –         | header with the client certificate (TLS proxy)   |
| KYSO_CLIENT_CERT_PROXIES     | loopback  | addresses / networks of the TLS proxies trusted  |
|                              |           | to set that header (comma-separated)             |
| KYSO_EXCHANGE_WORKER         | 1         | run the push / checkpoint worker in the server   |
| KYSO_RELAY_AUTH_FAILURES     | 60        | requests failing authentication a minute from    |
|                              |           | one address before the relay answers 429         |
| KYSO_METRICS_NETWORKS        | none      | networks that may read /metrics without an admin |
|                              |           | or auditor credential (comma-separated)          |
| KYSO_UNREACHABLE_RESPONDER   | pending   | revocation status unavailable: `pending` holds   |
|                              |           | the package and verifies it again, `refuse` 02s  |
| KYSO_VERIFY_BASE_DELAY       | 60        | first re-verification delay, seconds (doubles)   |
| KYSO_VERIFY_MAX_DELAY        | 1800      | longest re-verification delay, seconds           |
| KYSO_VERIFY_GIVE_UP          | 86400     | seconds a package may wait before it is refused  |

A malformed value stops the command (one line naming the variable), never widens or vanishes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from certs.egress import DENY_ALL, PUBLIC_NAMES, EgressPolicy, InvalidEgressRule
from certs.pkcs11uri import DEFAULT_ACCESS, DEFAULT_PKCS11_MODULE, Pkcs11Access
from exchange.config import LOOPBACK, RelayConfig, UnreachableResponder

from .errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_RELAY = RelayConfig()


def _flag(env: Mapping[str, str], name: str) -> bool:
    """On only if set to 1/true/yes/on (a web setting that is off unless asked for)."""
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _flag_on(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``default`` unless set; then off only for 0/false/no/off (a relay setting on by default)."""
    value = env.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return max(1, int(env.get(name) or default))
    except ValueError:
        return default


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(f"{name}={value!r} is not a number") from None


def _at_least_one(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 1 (a limit of 0 would refuse everything)."""
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed < 1:
        raise InvalidRequest(f"{name}={value!r} must be a whole number of at least 1")
    return parsed


def _egress(
    env: Mapping[str, str], name: str, default: str = "", any_name: bool = False
) -> EgressPolicy:
    """An allow-list setting; a malformed entry stops the start (it must not widen or vanish).
    ``any_name``: the entry ``*`` (every host name) is allowed."""
    try:
        return EgressPolicy.parse(env.get(name, default), any_name=any_name)
    except InvalidEgressRule as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


def networks(name: str, value: str | None) -> tuple[Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` as networks (an address is a network of one); () if unset."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in (value or "").split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise InvalidRequest(f"{name}={value!r}: {exc}") from None


def _text(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def relay_config(env: Mapping[str, str]) -> RelayConfig:
    """The relay's settings from ``env`` (the second table above)."""
    return RelayConfig(
        max_package_bytes=int(
            _number(env, "KYSO_EXCHANGE_MAX_BYTES", DEFAULT_RELAY.max_package_bytes)
        ),
        dead_letter_after=dt.timedelta(
            seconds=_number(
                env, "KYSO_DEAD_LETTER_AFTER", DEFAULT_RELAY.dead_letter_after.total_seconds()
            )
        ),
        push_base_delay=_number(env, "KYSO_PUSH_BASE_DELAY", DEFAULT_RELAY.push_base_delay),
        push_max_delay=_number(env, "KYSO_PUSH_MAX_DELAY", DEFAULT_RELAY.push_max_delay),
        checkpoint_interval=_number(
            env, "KYSO_AUDIT_CHECKPOINT_EVERY", DEFAULT_RELAY.checkpoint_interval
        ),
        require_signed_pdfs=_flag_on(
            env, "KYSO_REQUIRE_SIGNED_PDF", DEFAULT_RELAY.require_signed_pdfs
        ),
        client_cert_header=env.get("KYSO_CLIENT_CERT_HEADER") or None,
        client_cert_proxies=networks(
            "KYSO_CLIENT_CERT_PROXIES", env.get("KYSO_CLIENT_CERT_PROXIES")
        )
        or LOOPBACK,
        worker=_flag_on(env, "KYSO_EXCHANGE_WORKER", DEFAULT_RELAY.worker),
        routing_file=env.get("KYSO_ROUTING") or None,
        auth_failures_per_minute=_at_least_one(
            env, "KYSO_RELAY_AUTH_FAILURES", DEFAULT_RELAY.auth_failures_per_minute
        ),
        metrics_networks=networks("KYSO_METRICS_NETWORKS", env.get("KYSO_METRICS_NETWORKS")),
        unreachable_responder=_unreachable_responder(env),
        verify_base_delay=_number(env, "KYSO_VERIFY_BASE_DELAY", DEFAULT_RELAY.verify_base_delay),
        verify_max_delay=_number(env, "KYSO_VERIFY_MAX_DELAY", DEFAULT_RELAY.verify_max_delay),
        verify_give_up=dt.timedelta(
            seconds=_number(
                env, "KYSO_VERIFY_GIVE_UP", DEFAULT_RELAY.verify_give_up.total_seconds()
            )
        ),
    )


def _unreachable_responder(env: Mapping[str, str]) -> UnreachableResponder:
    value = env.get("KYSO_UNREACHABLE_RESPONDER", "").strip().lower()
    if not value:
        return DEFAULT_RELAY.unreachable_responder
    try:
        return UnreachableResponder(value)
    except ValueError:
        choices = ", ".join(p.value for p in UnreachableResponder)
        raise InvalidRequest(
            f"KYSO_UNREACHABLE_RESPONDER={value!r} is not one of {choices}"
        ) from None


def pkcs11_access(env: Mapping[str, str]) -> Pkcs11Access:
    """The PKCS#11 library and PIN for keys whose URI does not name them."""
    return Pkcs11Access(
        module=env.get("KYSO_PKCS11_MODULE") or DEFAULT_PKCS11_MODULE,
        pin=env.get("KYSO_PKCS11_PIN") or None,
    )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    pki_dir: Path
    secure_cookies: bool = False
    max_upload_mb: int = 110
    verify_rate_per_minute: int = 300
    push_allow: EgressPolicy = DENY_ALL
    # OCSP and CRL URLs come from certificates: any public name, special addresses only if listed.
    revocation_allow: EgressPolicy = PUBLIC_NAMES
    login_address_limit: int = 50
    # The client's address is read from this header only on connections from these networks.
    client_address_header: str | None = None
    trusted_proxies: tuple[Network, ...] = LOOPBACK
    relay: RelayConfig = DEFAULT_RELAY
    pkcs11: Pkcs11Access = DEFAULT_ACCESS
    stamp_font: Path | None = None  # None: Noto Serif (signer/fonts.py)
    relay_url: str | None = None  # of `kyso send` & co., when neither --url nor the credential
    # Secrets are never shown (repr) nor logged; the passphrase file is read when needed.
    passphrase: str | None = field(default=None, repr=False)
    passphrase_file: Path | None = None
    secret_key: str | None = field(default=None, repr=False)

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def load(
        cls,
        data: str | None = None,
        db: str | None = None,
        pki: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """The settings from ``env`` (the process environment by default); ``data``, ``db``
        and ``pki`` (CLI options) win over their variables. Raises :class:`InvalidRequest`
        for a malformed value."""
        env = os.environ if env is None else env
        data_dir = Path(data or env.get("KYSO_DATA") or "var")
        db_url = db or env.get("KYSO_DB") or f"sqlite:///{data_dir / 'kyso.sqlite'}"
        pki_dir = Path(pki or env.get("KYSO_PKI") or data_dir / "pki")
        font = env.get("KYSO_STAMP_FONT")
        passphrase_file = env.get("KYSO_PASSPHRASE_FILE")
        return cls(
            data_dir,
            db_url,
            pki_dir,
            secure_cookies=_flag(env, "KYSO_SECURE_COOKIES"),
            max_upload_mb=_int(env, "KYSO_MAX_UPLOAD_MB", 110),
            verify_rate_per_minute=_int(env, "KYSO_VERIFY_RATE", 300),
            push_allow=_egress(env, "KYSO_PUSH_ALLOW"),
            revocation_allow=_egress(env, "KYSO_REVOCATION_ALLOW", "*", any_name=True),
            login_address_limit=_int(env, "KYSO_LOGIN_ADDRESS_LIMIT", 50),
            client_address_header=_text(env, "KYSO_CLIENT_ADDRESS_HEADER"),
            trusted_proxies=networks("KYSO_TRUSTED_PROXIES", env.get("KYSO_TRUSTED_PROXIES"))
            or LOOPBACK,
            relay=relay_config(env),
            pkcs11=pkcs11_access(env),
            stamp_font=Path(font) if font else None,
            relay_url=env.get("KYSO_URL") or None,
            passphrase=env.get("KYSO_PASSPHRASE") or None,
            passphrase_file=Path(passphrase_file) if passphrase_file else None,
            secret_key=env.get("KYSO_SECRET_KEY") or None,
        )
