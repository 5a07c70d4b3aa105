"""The one schema of Kyso's database: a single :class:`sqlalchemy.MetaData` every table joins.

It lives here, at the floor of the layers, because every layer that keeps rows (the directory,
``certs``, ``exchange``, ``kyso``) can import it and none has to import another's tables to
share it. Each layer still defines its own tables in its own ``store`` module, on this object;
``kyso.db.METADATA`` imports them all, and the Alembic migrations are compared with, and new
ones generated from, that whole (``kyso db revision``).

The naming convention gives every constraint and index a name computed from the table and its
columns, so autogenerate is deterministic and a migration can drop what it names. The names are
the ones PostgreSQL gives unnamed constraints itself (``<table>_<columns>_key`` …) and the ones
SQLAlchemy already gave indexes: the databases migrated before the convention existed carry the
same names, and no table had to be rebuilt for it.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
