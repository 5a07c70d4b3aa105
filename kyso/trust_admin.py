"""Changes to the trust store (:mod:`certs.trust_anchors`), each appended to the relay's audit
log (event ``admin``, subject ``trust:NAME``, with the certificate's fingerprint and subject),
as credential changes are. `kyso trust` and `kyso pki init` go through here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

    from certs.trust_anchors import StoredAnchor
    from certs.truststore import AnchorRole

    from .services import Root


def _audit(root: Root, actor: str, change: str, stored: StoredAnchor) -> None:
    from exchange import audit as events

    anchor = stored.anchor
    root.audit.record(
        events.ADMIN,
        actor,
        f"trust:{anchor.name}",
        {
            "change": change,
            "name": anchor.name,
            "role": anchor.role.value,
            "fingerprint": anchor.fingerprint,
            "subject": anchor.certificate.subject.rfc4514_string(),
        },
    )


def add_anchor(
    root: Root,
    actor: str,
    name: str,
    certificate: x509.Certificate,
    role: AnchorRole | None = None,
    until: dt.datetime | None = None,
) -> StoredAnchor:
    """Add an entry to the trust store and record it in the audit log."""
    stored = root.trust_anchors.add(name, certificate, role, until)
    _audit(root, actor, "trust-anchor-added", stored)
    return stored


def remove_anchor(root: Root, actor: str, name: str) -> StoredAnchor:
    """Remove the entry ``name`` and record it in the audit log."""
    stored = root.trust_anchors.remove(name)
    _audit(root, actor, "trust-anchor-removed", stored)
    return stored


def trust_local_pki(root: Root, actor: str, pki_dir: Path) -> list[str]:
    """Put Kyso's own CA (root and issuing CA) in the trust store, audited; the names added.

    An entry already holding the certificate is left as it is; a name taken by another
    certificate (a PKI made again) gets the new one's fingerprint appended."""
    from certs.layout import PkiLayout
    from certs.trust_anchors import local_pki_anchors
    from certs.truststore import fingerprint

    stored = root.trust_anchors.all()
    present = {s.anchor.fingerprint for s in stored}
    names = {s.anchor.name for s in stored}
    added = []
    for name, cert, role in local_pki_anchors(PkiLayout(pki_dir)):
        digest = fingerprint(cert)
        if digest not in present:
            unique = f"{name}-{digest[:8]}" if name in names else name
            added.append(add_anchor(root, actor, unique, cert, role).anchor.name)
    return added
