"""Deliveries (the inbox items, pushed or pulled) and push endpoints: records and repository.

A delivery is one message or status owed to one agency; it stays in the agency's inbox until
acknowledged, by a pull (``POST /inbox/{n}/ack``) or by a push the endpoint answered 2xx. A
push that failed for too long is a dead letter until an administrator revives it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from certs.clock import as_utc as utc

from .store import ExchangeStore, deliveries, push_endpoints


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    agency: str
    kind: str  # "message" or "status"
    message_id: str
    status_id: int | None
    created_at: dt.datetime
    since: dt.datetime
    acked_at: dt.datetime | None
    acked_via: str | None
    attempts: int
    next_attempt_at: dt.datetime | None
    dead_at: dt.datetime | None
    last_error: str | None


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(row.id),
        agency=row.agency,
        kind=row.kind,
        message_id=row.message_id,
        status_id=int(row.status_id) if row.status_id is not None else None,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        since=utc(row.since),  # type: ignore[arg-type]
        acked_at=utc(row.acked_at),
        acked_via=row.acked_via,
        attempts=int(row.attempts or 0),
        next_attempt_at=utc(row.next_attempt_at),
        dead_at=utc(row.dead_at),
        last_error=row.last_error,
    )


def add_deliveries(
    conn: sa.Connection,
    agencies_: Sequence[str],
    kind: str,
    message_id: str,
    status_id: int | None,
    now: dt.datetime,
) -> list[int]:
    """Owe ``kind`` (a message, or its status ``status_id``) to each agency; the new ids.

    Inside the write transaction that stores the message or status itself.
    """
    ids = []
    for agency in agencies_:
        dedupe = f"{kind}:{message_id}:{status_id or 0}:{agency}"
        result = conn.execute(
            deliveries.insert()
            .values(
                agency=agency,
                kind=kind,
                message_id=message_id,
                status_id=status_id,
                dedupe=dedupe,
                created_at=now,
                since=now,
                attempts=0,
                next_attempt_at=now,
            )
            .returning(deliveries.c.id)
        )
        ids.append(int(result.scalar_one()))
    return ids


class MailboxStore(ExchangeStore):
    """Deliveries and push endpoints."""

    # -- the inbox --

    def inbox(self, agency: str, after: int, limit: int) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.agency == agency)
                .where(deliveries.c.id > after)
                .where(deliveries.c.acked_at.is_(None))
                .order_by(deliveries.c.id)
                .limit(limit)
            ).all()
        return [_delivery(r) for r in rows]

    def delivery(
        self, delivery_id: int, conn: sa.Connection | None = None
    ) -> DeliveryRecord | None:
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            row = conn.execute(deliveries.select().where(deliveries.c.id == delivery_id)).first()
        return _delivery(row) if row is not None else None

    def deliveries_of(self, message_id: str) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.message_id == message_id)
                .order_by(deliveries.c.id)
            ).all()
        return [_delivery(r) for r in rows]

    def mark_acked(self, conn: sa.Connection, delivery_id: int, now: dt.datetime, via: str) -> bool:
        """Acknowledge once; False if it already was."""
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.acked_at.is_(None))
            .values(acked_at=now, acked_via=via, lease_until=None)
        )
        return bool(result.rowcount)

    # -- pushing --

    def due_pushes(self, now: dt.datetime, limit: int) -> list[tuple[DeliveryRecord, str]]:
        """Unacknowledged, living deliveries to agencies with a push endpoint, due now."""
        query = (
            sa.select(deliveries, push_endpoints.c.url)
            .join(push_endpoints, push_endpoints.c.agency == deliveries.c.agency)
            .where(deliveries.c.acked_at.is_(None))
            .where(deliveries.c.dead_at.is_(None))
            .where(deliveries.c.next_attempt_at <= now)
            .where(sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
            .order_by(deliveries.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_delivery(r), r.url) for r in rows]

    def lease(self, delivery_id: int, now: dt.datetime, until: dt.datetime) -> bool:
        """Claim a push attempt (one process, one worker at a time)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .where(deliveries.c.acked_at.is_(None))
                .where(sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
                .values(lease_until=until)
            )
        return bool(result.rowcount)

    def schedule_retry(
        self, delivery_id: int, attempts: int, next_at: dt.datetime, error: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    attempts=attempts, next_attempt_at=next_at, lease_until=None, last_error=error
                )
            )

    def set_push_endpoint(
        self, conn: sa.Connection, agency: str, url: str | None, now: dt.datetime
    ) -> None:
        conn.execute(push_endpoints.delete().where(push_endpoints.c.agency == agency))
        if url is not None:
            conn.execute(push_endpoints.insert().values(agency=agency, url=url, created_at=now))

    # -- dead letters --

    def mark_dead(
        self, conn: sa.Connection, delivery_id: int, now: dt.datetime, attempts: int, error: str
    ) -> None:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(dead_at=now, attempts=attempts, lease_until=None, last_error=error)
        )

    def dead_letters(self) -> list[DeliveryRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                deliveries.select()
                .where(deliveries.c.dead_at.is_not(None))
                .where(deliveries.c.acked_at.is_(None))
                .order_by(deliveries.c.id)
            ).all()
        return [_delivery(r) for r in rows]

    def revive(self, conn: sa.Connection, delivery_id: int, now: dt.datetime) -> bool:
        result = conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .where(deliveries.c.dead_at.is_not(None))
            .values(dead_at=None, attempts=0, next_attempt_at=now, since=now, last_error=None)
        )
        return bool(result.rowcount)
