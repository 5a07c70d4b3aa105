"""Status messages as received: the records and their repository.

Each row keeps the signed XML as it came (``GET …/statuses/{n}`` answers it byte for byte);
its SHA-256 is unique, which refuses a replayed status even when two race.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from certs.clock import as_utc as utc

from .store import ExchangeStore, statuses

# The party of the relay's own statuses (the end of a held package's verification), as the
# trail names the relay's receipt.
RELAY_PARTY = "relay"


@dataclass(frozen=True)
class StatusRecord:
    id: int
    message_id: str
    from_agency: str
    code: str
    xml: bytes
    sha256: str
    signed_at: dt.datetime
    received_at: dt.datetime


def _status(row: Any) -> StatusRecord:
    return StatusRecord(
        id=int(row.id),
        message_id=row.message_id,
        from_agency=row.from_agency,
        code=row.code,
        xml=bytes(row.xml),
        sha256=row.sha256,
        signed_at=utc(row.signed_at),  # type: ignore[arg-type]
        received_at=utc(row.received_at),  # type: ignore[arg-type]
    )


class StatusStore(ExchangeStore):
    """The statuses of messages."""

    def status_by_sha(self, sha256: str) -> StatusRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(statuses.select().where(statuses.c.sha256 == sha256)).first()
        return _status(row) if row is not None else None

    def insert_status(
        self,
        conn: sa.Connection,
        message_id: str,
        from_agency: str,
        code: str,
        xml: bytes,
        sha256: str,
        signed_at: dt.datetime,
        received_at: dt.datetime,
    ) -> int:
        result = conn.execute(
            statuses.insert()
            .values(
                message_id=message_id,
                from_agency=from_agency,
                code=code,
                xml=xml,
                sha256=sha256,
                signed_at=signed_at,
                received_at=received_at,
            )
            .returning(statuses.c.id)
        )
        return int(result.scalar_one())

    def statuses(self, message_id: str) -> list[StatusRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                statuses.select().where(statuses.c.message_id == message_id).order_by(statuses.c.id)
            ).all()
        return [_status(r) for r in rows]

    def status(self, status_id: int) -> StatusRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(statuses.select().where(statuses.c.id == status_id)).first()
        return _status(row) if row is not None else None
