"""Changes to the certificates registered to agencies (:mod:`directory.certificates`), each
appended to the relay's audit log (event ``admin``, subject ``agency-certificate:ID``, with the
registration as JSON), as trust store changes are (:mod:`kyso.trust_admin`). `kyso directory
certificate` and the admin web page go through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

    from directory.certificates import CertificateRegistry, Registration, Role
    from exchange.audit import AuditLog

ADDED = "agency-certificate-added"
REMOVED = "agency-certificate-removed"


def _audit(audit: AuditLog, actor: str, change: str, registration: Registration) -> None:
    from exchange import audit as events

    audit.record(
        events.ADMIN,
        actor,
        f"agency-certificate:{registration.id}",
        {"change": change, **registration.to_dict()},
    )


def register_certificate(
    registry: CertificateRegistry,
    audit: AuditLog,
    actor: str,
    agency: str,
    certificate: x509.Certificate,
    role: Role,
    *,
    by_subject: Iterable[str] = (),
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> Registration:
    """Register ``certificate`` to ``agency`` (:meth:`CertificateRegistry.register`, whose
    errors pass through) and record it in the audit log."""
    registration = registry.register(
        agency,
        certificate,
        role,
        by_subject=by_subject,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    _audit(audit, actor, ADDED, registration)
    return registration


def remove_registration(
    registry: CertificateRegistry, audit: AuditLog, actor: str, registration_id: int
) -> Registration:
    """Remove the registration ``registration_id`` (:class:`UnknownRegistration` if none) and
    record it in the audit log."""
    registration = registry.remove(registration_id)
    _audit(audit, actor, REMOVED, registration)
    return registration


def day_start(value: dt.date | None) -> dt.datetime | None:
    """The first moment (UTC) of a registration's first day."""
    return None if value is None else dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def day_end(value: dt.date | None) -> dt.datetime | None:
    """The last second (UTC) of a registration's last day."""
    start = day_start(value)
    return None if start is None else start.replace(hour=23, minute=59, second=59)
