"""The audit log: every event of the relay, appended to a hash chain.

Each row stores ``prev_hash`` (the hash of the row before, zeros for the first) and ``hash`` =
SHA-256 over the canonical JSON of the row (sequence number, time, event, actor, subject,
data, prev_hash). Rows are appended inside the transaction of the change they record, under
the relay's write lock, so the chain has one writer and no gaps. ``audit_head`` holds the last
sequence number and hash (a truncated tail shows).

A hash chain alone can be recomputed by whoever can write the database; checkpoints cannot:
every checkpoint is an RFC 3161 token from the TSA over an imprint that binds the row's hash
and the previous checkpoint's imprint. :func:`verify_chain` recomputes everything and names
the first row that was edited, inserted or deleted.

Nothing in Kyso updates or deletes audit rows (the database refuses it by trigger too).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from certs.clock import utcnow

from .store import (
    GENESIS_HASH,
    HEAD_ID,
    ExchangeStore,
    audit_checkpoints,
    audit_head,
    audit_log,
)

# The events the relay records.
SENT = "sent"
REJECTED = "rejected"
DELIVERED = "delivered"
STATUS = "status"
REVOKED = "revoked"
ADMIN = "admin"
AUTH_FAILED = "auth-failed"
DEAD_LETTER = "dead-letter"
# A package held for want of revocation information, then decided (exchange/pending.py).
VERIFICATION_PENDING = "verification-pending"
VERIFIED = "verified"
VERIFICATION_REFUSED = "verification-refused"

BATCH = 2000


def at_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def data_text(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def row_hash(
    seq: int, at: str, event: str, actor: str, subject: str, data: str, prev_hash: str
) -> str:
    """SHA-256 (hex) of the canonical form of one row."""
    canonical = json.dumps(
        [seq, at, event, actor, subject, data, prev_hash],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def checkpoint_imprint(seq: int, row_hash_hex: str, prev_imprint: str) -> str:
    text = f"kyso-audit-checkpoint\n{seq}\n{row_hash_hex}\n{prev_imprint}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    event: str
    actor: str
    subject: str
    data: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "event": self.event,
            "actor": self.actor,
            "subject": self.subject,
            "data": json.loads(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    prev_imprint: str
    imprint: str
    at: str
    token: bytes


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        int(row.seq), row.at, row.event, row.actor, row.subject, row.data, row.prev_hash, row.hash
    )


class AuditLog:
    """Append to, read and checkpoint the chain."""

    def __init__(self, store: ExchangeStore) -> None:
        self.store = store
        self.engine = store.engine

    def append(
        self,
        conn: sa.Connection,
        event: str,
        actor: str,
        subject: str,
        data: dict[str, Any],
        at: dt.datetime | None = None,
    ) -> AuditEvent:
        """Append inside ``conn``, a transaction of :meth:`ExchangeStore.write`."""
        head = conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
        ).one()
        seq = int(head.seq) + 1
        moment = at_text(at or utcnow())
        text = data_text(data)
        digest = row_hash(seq, moment, event, actor, subject, text, head.hash)
        conn.execute(
            audit_log.insert().values(
                seq=seq,
                at=moment,
                event=event,
                actor=actor,
                subject=subject,
                data=text,
                prev_hash=head.hash,
                hash=digest,
            )
        )
        conn.execute(
            audit_head.update().where(audit_head.c.id == HEAD_ID).values(seq=seq, hash=digest)
        )
        return AuditEvent(seq, moment, event, actor, subject, text, head.hash, digest)

    def record(self, event: str, actor: str, subject: str, data: dict[str, Any]) -> AuditEvent:
        """Append in a transaction of its own."""
        with self.store.write() as conn:
            return self.append(conn, event, actor, subject, data)

    def head(self) -> tuple[int, str]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD_ID)
            ).one()
        return int(row.seq), str(row.hash)

    def events(
        self, after: int = 0, limit: int = 100, subject: str | None = None
    ) -> list[AuditEvent]:
        query = audit_log.select().where(audit_log.c.seq > after)
        if subject is not None:
            query = query.where(audit_log.c.subject == subject)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_log.c.seq).limit(limit)).all()
        return [_event(r) for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(audit_checkpoints.select().order_by(audit_checkpoints.c.seq)).all()
        return [
            Checkpoint(int(r.seq), r.hash, r.prev_imprint, r.imprint, r.at, bytes(r.token))
            for r in rows
        ]

    def last_checkpoint_seq(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(audit_checkpoints.c.seq))).scalar()
        return int(value or 0)

    def checkpoint(self, stamp: Callable[[bytes], bytes]) -> Checkpoint | None:
        """Timestamp the head of the chain; ``stamp(sha256_digest)`` returns a DER token.

        None when nothing was appended since the last checkpoint.
        """
        seq, digest = self.head()
        if seq == 0 or seq <= self.last_checkpoint_seq():
            return None
        previous = self._last_checkpoint()
        prev_imprint = previous.imprint if previous else GENESIS_HASH
        imprint = checkpoint_imprint(seq, digest, prev_imprint)
        token = stamp(bytes.fromhex(imprint))  # outside the write lock: the TSA writes too
        checkpoint = Checkpoint(seq, digest, prev_imprint, imprint, at_text(utcnow()), token)
        with self.store.write() as conn:
            # Another process (a second server, `kyso audit checkpoint`) may have been faster:
            # a checkpoint must chain to the latest one, so this one is dropped.
            latest = self._last_checkpoint(conn)
            if (latest.imprint if latest else GENESIS_HASH) != prev_imprint:
                return None
            conn.execute(
                audit_checkpoints.insert().values(
                    seq=checkpoint.seq,
                    hash=checkpoint.hash,
                    prev_imprint=checkpoint.prev_imprint,
                    imprint=checkpoint.imprint,
                    at=checkpoint.at,
                    token=checkpoint.token,
                )
            )
        return checkpoint

    def _last_checkpoint(self, conn: sa.Connection | None = None) -> Checkpoint | None:
        query = audit_checkpoints.select().order_by(audit_checkpoints.c.seq.desc()).limit(1)
        if conn is None:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Checkpoint(
            int(row.seq), row.hash, row.prev_imprint, row.imprint, row.at, bytes(row.token)
        )

    def iterate(self) -> Iterator[AuditEvent]:
        after = 0
        while True:
            batch = self.events(after, BATCH)
            if not batch:
                return
            yield from batch
            after = batch[-1].seq


# A checker of checkpoint tokens: (token DER, imprint bytes) → None if good, else why not.
TokenChecker = Callable[[bytes, bytes], "str | None"]


@dataclass
class ChainVerdict:
    """The result of :func:`verify_chain`."""

    rows: int = 0
    head_seq: int = 0
    checkpoints: int = 0
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, seq: int, problem: str) -> None:
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_seq": self.head_seq,
            "checkpoints": self.checkpoints,
            "first_bad_seq": self.first_bad_seq,
            "problems": self.problems,
            "notes": self.notes,
        }


def verify_chain(log: AuditLog, check_token: TokenChecker | None = None) -> ChainVerdict:
    """Recompute the whole chain; name the first edited, inserted or deleted row."""
    verdict = ChainVerdict()
    expected, prev, hashes = 1, GENESIS_HASH, {}
    for row in log.iterate():
        verdict.rows += 1
        if row.seq > expected:
            missing = f"{expected}" if row.seq == expected + 1 else f"{expected}–{row.seq - 1}"
            verdict.fail(expected, f"row {missing} was deleted (sequence jumps to {row.seq})")
            prev = row.prev_hash  # go on checking from the surviving rows
        elif row.seq < expected:  # cannot happen with a primary key; be safe
            verdict.fail(row.seq, f"row {row.seq} appears twice")
        recomputed = row_hash(
            row.seq, row.at, row.event, row.actor, row.subject, row.data, row.prev_hash
        )
        if recomputed != row.hash:
            verdict.fail(row.seq, f"row {row.seq} was edited: its content does not match its hash")
        elif row.prev_hash != prev:
            verdict.fail(
                row.seq,
                f"row {row.seq} was inserted or rewritten: it does not link to the row before",
            )
        hashes[row.seq] = row.hash
        prev = row.hash
        expected = row.seq + 1
    head_seq, head_hash = log.head()
    verdict.head_seq = head_seq
    last = expected - 1
    if head_seq > last:
        missing = f"{last + 1}" if head_seq == last + 1 else f"{last + 1}–{head_seq}"
        verdict.fail(last + 1, f"row {missing} was deleted (the head is at {head_seq})")
    elif head_seq < last:
        verdict.fail(head_seq + 1, f"row {head_seq + 1} was inserted after the head ({head_seq})")
    elif last and head_hash != prev:
        verdict.fail(last, f"row {last} was rewritten: it does not match the head")
    _verify_checkpoints(log, hashes, verdict, check_token)
    return verdict


def _verify_checkpoints(
    log: AuditLog,
    hashes: dict[int, str],
    verdict: ChainVerdict,
    check_token: TokenChecker | None,
) -> None:
    prev_imprint = GENESIS_HASH
    for checkpoint in log.checkpoints():
        verdict.checkpoints += 1
        seq = checkpoint.seq
        if checkpoint.prev_imprint != prev_imprint:
            verdict.fail(seq, f"checkpoint {seq}: the checkpoint before it was removed or changed")
        imprint = checkpoint_imprint(seq, checkpoint.hash, checkpoint.prev_imprint)
        if imprint != checkpoint.imprint:
            verdict.fail(seq, f"checkpoint {seq} was edited")
        if check_token is not None:
            why = check_token(checkpoint.token, bytes.fromhex(imprint))
            if why:
                verdict.fail(seq, f"checkpoint {seq}: the timestamp does not hold ({why})")
        if hashes.get(seq) != checkpoint.hash:
            verdict.fail(
                seq,
                f"rows up to {seq} were rewritten: row {seq} no longer has the hash its "
                f"timestamped checkpoint of {checkpoint.at} recorded",
            )
        prev_imprint = checkpoint.imprint
    if verdict.checkpoints == 0 and verdict.rows:
        verdict.notes.append("no timestamped checkpoint yet: only the hash chain was checked")
    elif verdict.rows:
        last = max((c.seq for c in log.checkpoints()), default=0)
        if last < verdict.head_seq:
            verdict.notes.append(
                f"rows {last + 1}–{verdict.head_seq} are after the last checkpoint "
                "(protected by the chain, not yet by a timestamp)"
            )
