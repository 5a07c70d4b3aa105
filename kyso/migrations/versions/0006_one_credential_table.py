"""One credential table: API tokens and the relay's HMAC keys move into ``credentials``.

Revision ID: 0006
Revises: 0005

Until here a bearer token of ``/api/v1/sign…`` was a row of ``api_tokens`` and an HMAC key of
the relay a row of ``exchange_credentials``. Both become rows of ``credentials`` (``kind``
``bearer`` or ``hmac``; a client certificate may be registered there too, kind
``certificate``), with the same id, hashes, sealed secret, grants and moments: every token and
key works as before (the HMAC secrets were sealed with their key id as associated data, and
the key id is kept). The downgrade moves them back (a registered certificate has no place in
0005 and is dropped).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)

# The tables as this migration knows them (the models may change after it).
credentials = sa.table(
    "credentials",
    *(
        sa.column(name)
        for name in (
            "id",
            "kind",
            "role",
            "agency_code",
            "label",
            "digest",
            "secret_sealed",
            "key_refs",
            "rate_per_minute",
            "created_at",
            "last_used_at",
            "revoked_at",
        )
    ),
)
api_tokens = sa.table(
    "api_tokens",
    *(
        sa.column(name)
        for name in (
            "id",
            "name",
            "agency_code",
            "key_refs",
            "token_hash",
            "rate_per_minute",
            "created_at",
            "last_used_at",
            "revoked_at",
        )
    ),
)
exchange_credentials = sa.table(
    "exchange_credentials",
    *(
        sa.column(name)
        for name in (
            "key_id",
            "role",
            "agency_code",
            "label",
            "secret_sha256",
            "secret_sealed",
            "created_at",
            "revoked_at",
        )
    ),
)


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=True),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("key_refs", sa.Text(), server_default="[]", nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_used_at", UTC_TIME, nullable=True),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("credentials_pkey")),
        sa.UniqueConstraint("digest", name=op.f("credentials_digest_key")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credentials_agency_code"), ["agency_code"], unique=False
        )
    _copy_into_credentials()

    with op.batch_alter_table("exchange_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_credentials_agency_code"))
    op.drop_table("exchange_credentials")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_agency_code"))
    op.drop_table("api_tokens")


def _copy_into_credentials() -> None:
    tokens = sa.select(
        api_tokens.c.id,
        sa.literal_column("'bearer'"),
        sa.literal_column("'agency'"),
        api_tokens.c.agency_code,
        api_tokens.c.name,
        api_tokens.c.token_hash,
        sa.cast(sa.null(), sa.LargeBinary),
        api_tokens.c.key_refs,
        api_tokens.c.rate_per_minute,
        api_tokens.c.created_at,
        api_tokens.c.last_used_at,
        api_tokens.c.revoked_at,
    )
    keys = sa.select(
        exchange_credentials.c.key_id,
        sa.literal_column("'hmac'"),
        exchange_credentials.c.role,
        exchange_credentials.c.agency_code,
        exchange_credentials.c.label,
        exchange_credentials.c.secret_sha256,
        exchange_credentials.c.secret_sealed,
        sa.literal_column("'[]'"),
        sa.cast(sa.null(), sa.Integer),
        exchange_credentials.c.created_at,
        sa.cast(sa.null(), UTC_TIME),
        exchange_credentials.c.revoked_at,
    )
    columns = [c.name for c in credentials.c]
    op.execute(credentials.insert().from_select(columns, tokens))
    op.execute(credentials.insert().from_select(columns, keys))


def downgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("key_refs", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_used_at", UTC_TIME, nullable=True),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("api_tokens_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("api_tokens_token_hash_key")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_agency_code"), ["agency_code"], unique=False
        )
    op.create_table(
        "exchange_credentials",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=True),
        sa.Column("label", sa.Text(), server_default="", nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_code"], ["agencies.code"], name=op.f("exchange_credentials_agency_code_fkey")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("exchange_credentials_pkey")),
        sa.UniqueConstraint("secret_sha256", name=op.f("exchange_credentials_secret_sha256_key")),
    )
    with op.batch_alter_table("exchange_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_credentials_agency_code"), ["agency_code"], unique=False
        )
    _copy_out_of_credentials()

    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_agency_code"))
    op.drop_table("credentials")


def _copy_out_of_credentials() -> None:
    c = credentials.c
    tokens = sa.select(
        c.id, c.label, c.agency_code, c.key_refs, c.digest, c.rate_per_minute,
        c.created_at, c.last_used_at, c.revoked_at,
    ).where(c.kind == "bearer")  # fmt: skip
    keys = sa.select(
        c.id, c.role, c.agency_code, c.label, c.digest, c.secret_sealed, c.created_at,
        c.revoked_at,
    ).where(c.kind == "hmac")  # fmt: skip
    op.execute(api_tokens.insert().from_select([x.name for x in api_tokens.c], tokens))
    keys_columns = [x.name for x in exchange_credentials.c]
    op.execute(exchange_credentials.insert().from_select(keys_columns, keys))
