"""The administrator's trust store: named trust roots and intermediates, kept in the database.

Every verifier that needs to know which CAs Kyso trusts — the CLI, the API, the auditor page,
the relay — asks :meth:`TrustAnchorStore.trust_set` and gets a :class:`~certs.truststore.TrustSet`.
Kyso's own CA is put in by ``kyso pki init`` (:func:`local_pki_anchors`), as one entry among
the others: an administrator who removes it stops trusting it.

Entries are keyed by the SHA-256 fingerprint of the certificate and named uniquely. Changes are
audited by the caller (the shell owns the audit log: ``kyso trust``); this module only keeps
the rows. The table is on Kyso's one :data:`directory.db.metadata` (migration ``0006``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from directory.db import metadata

from .clock import as_utc, utcnow
from .errors import PKIError
from .layout import ISSUING_CA, ROOT_CA, PkiLayout
from .truststore import (
    AnchorRole,
    TrustAnchor,
    TrustSet,
    default_role,
    fingerprint,
    load_one_certificate,
)

MAX_NAME = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
LOCAL_ROOT_NAME = "kyso-root"
LOCAL_ISSUING_NAME = "kyso-issuing"

trust_anchors = sa.Table(
    "trust_anchors",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trusted_until", sa.DateTime(timezone=True)),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)


class TrustAnchorError(PKIError):
    """Base class of the trust store's errors."""


class TrustAnchorExists(TrustAnchorError):
    """The name, or the certificate, is in the trust store already."""


class UnknownTrustAnchor(TrustAnchorError):
    """No entry of the trust store has that name."""


class NotACertificateAuthority(TrustAnchorError):
    """The certificate is not a CA's (basicConstraints cA is not true): it cannot anchor a
    chain nor issue one."""


class InvalidAnchorName(TrustAnchorError):
    """An entry's name must be 1-100 letters, digits, dots, hyphens or underscores."""


@dataclass(frozen=True)
class StoredAnchor:
    """An entry as the store keeps it: the anchor, and when it was added."""

    anchor: TrustAnchor
    added_at: dt.datetime


def _anchor(row: sa.Row) -> StoredAnchor:
    return StoredAnchor(
        TrustAnchor(
            row.name,
            x509.load_der_x509_certificate(row.der),
            AnchorRole(row.role),
            as_utc(row.trusted_until),
        ),
        as_utc(row.added_at),  # type: ignore[arg-type]
    )


def check_name(name: str) -> str:
    """``name`` if it is acceptable as an entry's name, else :class:`InvalidAnchorName`."""
    if not _NAME.match(name):
        raise InvalidAnchorName(
            f"{name!r}: a trust entry's name is 1-{MAX_NAME} letters, digits, '.', '-' or '_'"
        )
    return name


def check_ca(certificate: x509.Certificate) -> None:
    """:class:`NotACertificateAuthority` unless ``certificate`` is a CA's."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise NotACertificateAuthority(
            f"{certificate.subject.rfc4514_string()} has no basicConstraints: not a CA"
        ) from None
    if not constraints.value.ca:
        raise NotACertificateAuthority(f"{certificate.subject.rfc4514_string()} is not a CA")


class TrustAnchorStore:
    """The trust store's rows: list, add, remove; and the :class:`TrustSet` for verifiers."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def all(self) -> list[StoredAnchor]:
        """Every entry, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(trust_anchors.select().order_by(trust_anchors.c.name)).all()
        return [_anchor(r) for r in rows]

    def get(self, name: str) -> StoredAnchor:
        """The entry named ``name``; :class:`UnknownTrustAnchor` if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(trust_anchors.select().where(trust_anchors.c.name == name)).first()
        if row is None:
            raise UnknownTrustAnchor(f"no trust entry is named {name!r}")
        return _anchor(row)

    def add(
        self,
        name: str,
        certificate: x509.Certificate,
        role: AnchorRole | None = None,
        trusted_until: dt.datetime | None = None,
        at: dt.datetime | None = None,
    ) -> StoredAnchor:
        """Trust ``certificate`` under ``name``: a root if self-signed, unless ``role`` says.

        Raises :class:`InvalidAnchorName`, :class:`NotACertificateAuthority`, or
        :class:`TrustAnchorExists` when the name or the certificate is there already.
        """
        check_name(name)
        check_ca(certificate)
        values = {
            "fingerprint": fingerprint(certificate),
            "name": name,
            "role": (role or default_role(certificate)).value,
            "subject": certificate.subject.rfc4514_string(),
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
            "trusted_until": trusted_until,
            "der": certificate.public_bytes(serialization.Encoding.DER),
            "added_at": at or utcnow(),
        }
        with self.engine.begin() as conn:
            clash = conn.execute(
                sa.select(trust_anchors.c.name).where(
                    (trust_anchors.c.name == name)
                    | (trust_anchors.c.fingerprint == values["fingerprint"])
                )
            ).first()
            if clash is not None:
                raise TrustAnchorExists(f"the trust store holds {clash.name!r} already")
            conn.execute(trust_anchors.insert().values(**values))
        return self.get(name)

    def remove(self, name: str) -> StoredAnchor:
        """Stop trusting the entry ``name``; returns what it was (for the audit log)."""
        with self.engine.begin() as conn:
            row = conn.execute(trust_anchors.select().where(trust_anchors.c.name == name)).first()
            if row is None:
                raise UnknownTrustAnchor(f"no trust entry is named {name!r}")
            conn.execute(trust_anchors.delete().where(trust_anchors.c.name == name))
        return _anchor(row)

    def trust_set(self, at: dt.datetime | None = None) -> TrustSet:
        """What a verifier trusts at ``at`` (now by default): every entry still valid then.

        The one function the CLI, the API, the auditor page and the relay call.
        """
        return TrustSet(tuple(s.anchor for s in self.all())).valid_at(at)


def local_pki_anchors(layout: PkiLayout) -> list[tuple[str, x509.Certificate, AnchorRole]]:
    """Kyso's own CA as trust entries: its root, and its issuing CA for path building."""
    return [
        (LOCAL_ROOT_NAME, load_one_certificate(layout.ca_certificate(ROOT_CA)), AnchorRole.ROOT),
        (
            LOCAL_ISSUING_NAME,
            load_one_certificate(layout.ca_certificate(ISSUING_CA)),
            AnchorRole.INTERMEDIATE,
        ),
    ]


def local_pki_trust_set(layout: PkiLayout) -> TrustSet:
    """Kyso's own CA alone, as a trust set: what a tool reading only the PKI directory trusts."""
    return TrustSet(tuple(TrustAnchor(*entry) for entry in local_pki_anchors(layout)))
