"""The agency directory as kept in the database: the ``agencies`` table and its repository.

The table is on Kyso's one :data:`directory.db.metadata`; the relay's tables refer to it by
foreign key. Like every table, it is created by the Alembic migrations (``0001``).
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

from . import Agency, Directory, UnknownAgency
from .db import metadata

agencies = sa.Table(
    "agencies",
    metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("parent", sa.String(32), sa.ForeignKey("agencies.code"), index=True),
    sa.Column("province", sa.Text, nullable=False, server_default=""),
    sa.Column("email", sa.Text, nullable=False, server_default=""),
    sa.Column("address", sa.Text, nullable=False, server_default=""),
)


def _agency(row: sa.Row) -> Agency:
    return Agency(
        code=row.code,
        name=row.name,
        level=row.level,
        parent=row.parent,
        province=row.province,
        email=row.email,
        address=row.address,
    )


class AgencyStore:
    """The directory as kept in the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def load(self, directory: Directory) -> int:
        """Insert or update every agency of ``directory`` (parents first); return the count."""
        with self.engine.begin() as conn:
            for _, agency in directory.walk():
                self.upsert(agency, conn)
        return len(directory)

    def upsert(self, agency: Agency, conn: sa.Connection | None = None) -> bool:
        """Insert or update one agency; True if it was new."""
        values = {
            "name": agency.name,
            "level": agency.level,
            "parent": agency.parent,
            "province": agency.province,
            "email": agency.email,
            "address": agency.address,
        }
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.begin())
            updated = conn.execute(
                agencies.update().where(agencies.c.code == agency.code).values(**values)
            )
            if updated.rowcount:
                return False
            conn.execute(agencies.insert().values(code=agency.code, **values))
            return True

    def get(self, code: str) -> Agency:
        """The agency ``code``; :class:`UnknownAgency` if the directory has none."""
        with self.engine.connect() as conn:
            row = conn.execute(agencies.select().where(agencies.c.code == code)).first()
        if row is None:
            raise UnknownAgency(f"unknown agency {code}: it is not in the directory")
        return _agency(row)

    def directory(self) -> Directory:
        """Every agency, as a checked :class:`Directory`."""
        with self.engine.connect() as conn:
            rows = conn.execute(agencies.select().order_by(agencies.c.code)).all()
        return Directory(tuple(_agency(row) for row in rows))
