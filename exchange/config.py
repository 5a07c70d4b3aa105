"""The relay's settings, with defaults for a province.

Given by the caller: Kyso's shell fills them from ``KYSO_*`` environment variables in
``kyso/config.py`` (which lists them); this module reads no environment.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

LOOPBACK: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


class UnreachableResponder(StrEnum):
    """What the relay does with a package whose revocation status it cannot fetch now
    (verification INDETERMINATE/TRY_LATER)."""

    PENDING = "pending"  # hold it ("verification pending"), receipt at once, verify again later
    REFUSE = "refuse"  # refuse it at once, as any signature that does not pass


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
    client_cert_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOOPBACK
    worker: bool = True
    # The routing rules file (see exchange/routing.py); None: the shipped rules.
    routing_file: str | None = None
    # Per client address (an IPv6 /64), in a sliding minute; then 429 with Retry-After.
    auth_failures_per_minute: int = 60
    # None by default: behind a TLS terminator on the same host every client comes from
    # loopback, so "loopback only" would publish the metrics through the proxy.
    metrics_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    unreachable_responder: UnreachableResponder = UnreachableResponder.PENDING
    # A held package is verified again after base · 2^n seconds (capped, jittered), and
    # refused (02) when revocation information is still unavailable after ``verify_give_up``.
    verify_base_delay: float = 60.0
    verify_max_delay: float = 1800.0
    verify_give_up: dt.timedelta = dt.timedelta(hours=24)
