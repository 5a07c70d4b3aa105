"""The relay's settings, from the environment (``KYSO_*``), with defaults for a province.

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
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import BadRequest


@dataclass(frozen=True)
class RelayConfig:
    max_package_bytes: int = 50 * 1024 * 1024
    dead_letter_after: dt.timedelta = dt.timedelta(hours=24)
    push_base_delay: float = 1.0
    push_max_delay: float = 3600.0
    push_timeout: float = 10.0
    checkpoint_interval: float = 60.0
    require_signed_pdfs: bool = True
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    client_cert_header: str | None = None
    client_cert_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    worker: bool = True
    routing_file: str | None = None
    # Per client address (an IPv6 /64), in a sliding minute; then 429 with Retry-After.
    auth_failures_per_minute: int = 60
    # None by default: behind a TLS terminator on the same host every client comes from
    # loopback, so "loopback only" would publish the metrics through the proxy.
    metrics_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RelayConfig:
        env = os.environ if env is None else env

        def number(name: str, default: float) -> float:
            value = env.get(name)
            if value is None or value == "":
                return default
            try:
                return float(value)
            except ValueError:
                raise BadRequest(f"{name}={value!r} is not a number") from None

        def flag(name: str, default: bool) -> bool:
            value = env.get(name)
            if value is None or value == "":
                return default
            return value.strip().lower() not in ("0", "false", "no", "off")

        return cls(
            max_package_bytes=int(number("KYSO_EXCHANGE_MAX_BYTES", cls.max_package_bytes)),
            dead_letter_after=dt.timedelta(
                seconds=number("KYSO_DEAD_LETTER_AFTER", cls.dead_letter_after.total_seconds())
            ),
            push_base_delay=number("KYSO_PUSH_BASE_DELAY", cls.push_base_delay),
            push_max_delay=number("KYSO_PUSH_MAX_DELAY", cls.push_max_delay),
            checkpoint_interval=number("KYSO_AUDIT_CHECKPOINT_EVERY", cls.checkpoint_interval),
            require_signed_pdfs=flag("KYSO_REQUIRE_SIGNED_PDF", cls.require_signed_pdfs),
            client_cert_header=env.get("KYSO_CLIENT_CERT_HEADER") or None,
            client_cert_proxies=networks(
                "KYSO_CLIENT_CERT_PROXIES", env.get("KYSO_CLIENT_CERT_PROXIES")
            )
            or cls.client_cert_proxies,
            worker=flag("KYSO_EXCHANGE_WORKER", cls.worker),
            routing_file=env.get("KYSO_ROUTING") or None,
            auth_failures_per_minute=at_least_one(
                "KYSO_RELAY_AUTH_FAILURES",
                env.get("KYSO_RELAY_AUTH_FAILURES"),
                cls.auth_failures_per_minute,
            ),
            metrics_networks=networks("KYSO_METRICS_NETWORKS", env.get("KYSO_METRICS_NETWORKS")),
        )


def at_least_one(name: str, value: str | None, default: int) -> int:
    """``value`` as a whole number of at least 1 (a limit of 0 would refuse everything)."""
    if value is None or value.strip() == "":
        return default
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed < 1:
        raise BadRequest(f"{name}={value!r} must be a whole number of at least 1")
    return parsed


def networks(
    name: str, value: str | None
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` as networks (an address is a network of one); () if unset."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in (value or "").split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise BadRequest(f"{name}={value!r}: {exc}") from None
