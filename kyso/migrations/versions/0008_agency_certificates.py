"""Certificates registered to agencies (directory/certificates.py); the CA's records keyed by
issuer and serial, with their fingerprint (certs/store.py).

Every row of ``pki_certificates`` is kept: its issuer and fingerprint are read from its DER.
The seals and officers' certificates Kyso's CA issued before are registered to the agency their
``UID`` names (as they were bound to it before), if the directory holds that agency.

Revision ID: 0008
Revises: 0007
"""

import datetime as dt
import hashlib

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations
from cryptography import x509

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _keyless_copy() -> sa.Table:
    """``pki_certificates`` between the two keys, as SQLite's batch mode copies it: given, not
    reflected (reflected, the old key and the new one would both be on the copy)."""
    return sa.Table(
        "pki_certificates",
        sa.MetaData(),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("ca", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("common_name", sa.Text(), nullable=False),
        sa.Column("agency_code", sa.String(length=32)),
        sa.Column("key_ref", sa.Text()),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revocation_reason", sa.String(length=32)),
        sa.Column("issuer", sa.Text()),
        sa.Column("fingerprint", sa.String(length=64)),
        sa.Index("ix_pki_certificates_ca", "ca"),
        sa.Index("ix_pki_certificates_agency_code", "agency_code"),
    )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


# certs.pki.REGISTERED_ROLES as it was when this migration was written.
_ROLES = {"seal": "seal", "person": "officer"}


def upgrade() -> None:
    op.create_table(
        "agency_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_match", sa.Text(), nullable=True),
        sa.Column("issuer_key_id", sa.String(length=128), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency"], ["agencies.code"], name=op.f("agency_certificates_agency_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("agency_certificates_pkey")),
        sa.UniqueConstraint("fingerprint", name=op.f("agency_certificates_fingerprint_key")),
    )
    with op.batch_alter_table("agency_certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agency_certificates_agency"), ["agency"], unique=False)
        batch_op.create_index(batch_op.f("ix_agency_certificates_issuer"), ["issuer"], unique=False)

    with op.batch_alter_table("pki_certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    _fill_issuers_and_register()
    with op.batch_alter_table("pki_certificates", copy_from=_keyless_copy()) as batch_op:
        batch_op.alter_column("issuer", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("fingerprint", existing_type=sa.String(length=64), nullable=False)
        _drop_primary_key(batch_op)
        batch_op.create_primary_key("pki_certificates_pkey", ["issuer", "serial"])
        batch_op.create_unique_constraint(
            batch_op.f("pki_certificates_fingerprint_key"), ["fingerprint"]
        )


def _drop_primary_key(batch_op: BatchOperations) -> None:
    # On SQLite, the table is copied anew (from _keyless_copy) with the key create_primary_key
    # gives; elsewhere the old key is dropped by its name.
    if not _sqlite():
        batch_op.drop_constraint("pki_certificates_pkey", type_="primary")


def _fill_issuers_and_register() -> None:
    conn = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    known = {row.code for row in conn.execute(sa.text("SELECT code FROM agencies"))}
    rows = conn.execute(
        sa.text("SELECT serial, profile, agency_code, der FROM pki_certificates")
    ).all()
    for row in rows:
        certificate = x509.load_der_x509_certificate(bytes(row.der))
        fingerprint = hashlib.sha256(bytes(row.der)).hexdigest()
        conn.execute(
            sa.text(
                "UPDATE pki_certificates SET issuer = :issuer, fingerprint = :fingerprint"
                " WHERE serial = :serial"
            ),
            {
                "issuer": certificate.issuer.rfc4514_string(),
                "fingerprint": fingerprint,
                "serial": row.serial,
            },
        )
        if row.profile in _ROLES and row.agency_code in known:
            conn.execute(
                sa.text(
                    "INSERT INTO agency_certificates (agency, role, fingerprint, issuer, serial,"
                    " subject, valid_from, valid_until, der, source, added_at) VALUES (:agency,"
                    " :role, :fingerprint, :issuer, :serial, :subject, :valid_from, :valid_until,"
                    " :der, 'kyso-ca', :added_at)"
                ).bindparams(
                    sa.bindparam("valid_from", type_=sa.DateTime(timezone=True)),
                    sa.bindparam("valid_until", type_=sa.DateTime(timezone=True)),
                    sa.bindparam("added_at", type_=sa.DateTime(timezone=True)),
                    sa.bindparam("der", type_=sa.LargeBinary()),
                ),
                {
                    "agency": row.agency_code,
                    "role": _ROLES[row.profile],
                    "fingerprint": fingerprint,
                    "issuer": certificate.issuer.rfc4514_string(),
                    "serial": row.serial,
                    "subject": certificate.subject.rfc4514_string(),
                    "valid_from": certificate.not_valid_before_utc,
                    "valid_until": certificate.not_valid_after_utc,
                    "der": bytes(row.der),
                    "added_at": now,
                },
            )


def downgrade() -> None:
    with op.batch_alter_table("pki_certificates", copy_from=_keyless_copy()) as batch_op:
        if not _sqlite():  # the copy has neither key nor unique constraint
            batch_op.drop_constraint("pki_certificates_fingerprint_key", type_="unique")
        _drop_primary_key(batch_op)
        batch_op.create_primary_key("pki_certificates_pkey", ["serial"])
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("issuer")

    with op.batch_alter_table("agency_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agency_certificates_issuer"))
        batch_op.drop_index(batch_op.f("ix_agency_certificates_agency"))

    op.drop_table("agency_certificates")
