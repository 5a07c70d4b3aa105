"""Packages held in "verification pending": their rows and their retry schedule.

A row is written with the message (:meth:`~exchange.message_store.MessageStore.insert_message`)
and removed, in the transaction that decides the package, by :meth:`PendingStore.settle`, so
that a package is decided once even if two workers verified it. Writes take a connection of
:meth:`~exchange.store.ExchangeStore.write`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from certs.clock import as_utc as utc

from .store import ExchangeStore, pending_verifications


@dataclass(frozen=True)
class PendingRecord:
    message_id: str
    recipients: tuple[str, ...]
    since: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None


def _pending(row: sa.Row[tuple[object, ...]]) -> PendingRecord:
    return PendingRecord(
        message_id=row.message_id,
        recipients=tuple(a for a in row.recipients.split(",") if a),
        since=utc(row.since),  # type: ignore[arg-type]
        attempts=int(row.attempts),
        next_attempt_at=utc(row.next_attempt_at),  # type: ignore[arg-type]
        last_error=row.last_error,
    )


class PendingStore(ExchangeStore):
    """The held packages' rows."""

    def pending(self, message_id: str) -> PendingRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                pending_verifications.select().where(
                    pending_verifications.c.message_id == message_id
                )
            ).first()
        return _pending(row) if row is not None else None

    def due(self, now: dt.datetime, limit: int) -> list[PendingRecord]:
        """Held packages whose next verification is due, the longest waiting first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                pending_verifications.select()
                .where(pending_verifications.c.next_attempt_at <= now)
                .order_by(pending_verifications.c.next_attempt_at)
                .limit(limit)
            ).all()
        return [_pending(r) for r in rows]

    def lease(self, record: PendingRecord, until: dt.datetime) -> bool:
        """Take ``record`` for one verification until ``until``; False if another worker
        took it first (its schedule moved since it was read)."""
        with self.write() as conn:
            result = conn.execute(
                pending_verifications.update()
                .where(pending_verifications.c.message_id == record.message_id)
                .where(pending_verifications.c.next_attempt_at == record.next_attempt_at)
                .values(next_attempt_at=until)
            )
        return result.rowcount == 1

    def schedule(self, message_id: str, attempts: int, at: dt.datetime, error: str) -> None:
        """Verify again at ``at``: revocation information was still unavailable."""
        with self.write() as conn:
            conn.execute(
                pending_verifications.update()
                .where(pending_verifications.c.message_id == message_id)
                .values(attempts=attempts, next_attempt_at=at, last_error=error[:500])
            )

    def settle(self, conn: sa.Connection, message_id: str) -> bool:
        """Remove the row of a package being decided in ``conn``; False if it was already
        decided (then the caller decides nothing)."""
        result = conn.execute(
            pending_verifications.delete().where(pending_verifications.c.message_id == message_id)
        )
        return result.rowcount == 1
