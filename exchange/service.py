"""The relay's part of the object graph: what :func:`open_exchange` builds from the PKI, the
database and a :class:`RelayConfig`, for Kyso's composition root (``kyso/services.py``): one
object per use case, sharing the repositories, the audit log and the one write lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from certs.egress import DENY_ALL, EgressPolicy, Resolver, system_resolver
from certs.keystore import SigningKey, signer_from_bundle
from certs.layout import ISSUING_CA, ROOT_CA
from certs.pki import Pki
from certs.revocation_fetch import RevocationFetcher
from certs.services import PkiServices
from certs.trust_anchors import local_pki_trust_set
from certs.truststore import TrustSet
from certs.tsa import stamp_digest
from signer import edxml

from .administration import Administration
from .audit import AuditLog
from .auth import Authenticator, installation_id, sealing_key
from .blobs import BlobStore
from .config import RelayConfig
from .delivery import PushWorker, pinned_poster
from .mailbox import Mailbox
from .mailbox_store import MailboxStore
from .message_store import MessageStore
from .messages import Messages
from .pending import PendingVerifications
from .pending_store import PendingStore
from .receipts import ReceiptSigner
from .relay import Relay
from .routing import load_rules
from .status_store import StatusStore
from .statuses import Statuses
from .store import AgencyStore
from .trail import Trail
from .trust import Trust

RELAY_NAME = "Trục liên thông văn bản Kyso"
FALLBACK_ORGAN = "000.00.00.H00"


@dataclass
class Exchange:
    """The relay's use cases, its authenticator and its push worker."""

    relay: Relay  # the intake: packages in, receipts out
    messages: Messages
    statuses: Statuses
    mailbox: Mailbox
    administration: Administration
    trail: Trail
    authenticator: Authenticator
    worker: PushWorker
    config: RelayConfig
    pending: PendingVerifications  # held packages, verified again by the worker


def relay_organization(engine: sa.Engine) -> edxml.Organization:
    """Who signs receipts, in edXML terms: the operator at the root of the directory."""
    roots = [a for a in AgencyStore(engine).directory() if a.parent is None]
    if not roots:
        return edxml.Organization(FALLBACK_ORGAN, RELAY_NAME)
    return edxml.Organization(
        roots[0].code, RELAY_NAME, organization_in_charge=roots[0].name, email=roots[0].email
    )


def open_authenticator(engine: sa.Engine, pki: Pki, passphrase: bytes) -> Authenticator:
    """Credentials are sealed under the passphrase and this installation's root CA."""
    key = sealing_key(passphrase, installation_id(pki.root_certificate))
    return Authenticator(engine, key, pki.store)


def open_exchange(
    engine: sa.Engine,
    services: PkiServices,
    passphrase: bytes,
    data_dir: Path,
    config: RelayConfig,
    push_policy: EgressPolicy = DENY_ALL,
    resolver: Resolver = system_resolver,
    authenticator: Authenticator | None = None,
    anchors: Callable[[], TrustSet] | None = None,
    revocation: RevocationFetcher | None = None,
) -> Exchange:
    """Open the relay key, the routing rules of ``config`` and the stores; nothing is started.

    ``push_policy`` is the administrator's allow-list of push endpoints (by default none is
    allowed): checked when an agency registers one and again before every delivery, both
    resolving host names with ``resolver``. ``authenticator``: the one the caller already
    opened (see :func:`open_authenticator`), else one is opened here. ``anchors``: the trust
    store the relay verifies against (by default Kyso's own CA alone); ``revocation``: online
    OCSP and CRLs for certificates of other CAs (by default none: they cannot pass).
    """
    pki = services.pki
    bundle = pki.service_bundle("relay", passphrase)
    relay_key = SigningKey(
        f"p12:{pki.layout.private_key('relay')}",
        signer_from_bundle(bundle),
        bundle.certificate,
        bundle.chain,
    )
    local = local_pki_trust_set(pki.layout)
    trust = Trust(
        anchors or (lambda: local),
        lambda: {pki.endpoints.crl(name): services.crl(name) for name in (ROOT_CA, ISSUING_CA)},
        pki.endpoints.ocsp,
        revocation,
    )
    message_store, status_store = MessageStore(engine), StatusStore(engine)
    mailbox_store = MailboxStore(engine)
    audit = AuditLog(message_store)
    blobs = BlobStore(data_dir / "blobs")
    routing = load_rules(config.routing_file)
    administration = Administration(AgencyStore(engine), pki.store, routing, message_store, audit)
    relay = Relay(
        message_store,
        audit,
        blobs,
        trust,
        ReceiptSigner(relay_key, services.tsa, relay_organization(engine)),
        routing,
        pki.store,
        config,
        administration.directory,
    )
    pending = PendingVerifications(
        relay, PendingStore(engine), message_store, status_store, blobs, audit, config
    )
    messages = Messages(message_store, status_store, blobs)
    mailbox = Mailbox(
        mailbox_store,
        message_store,
        status_store,
        audit,
        push_policy=push_policy,
        resolver=resolver,
    )
    authenticator = authenticator or open_authenticator(engine, pki, passphrase)
    worker = PushWorker(
        mailbox,
        authenticator,
        config,
        pinned_poster(push_policy, resolver),
        stamp=lambda digest: stamp_digest(services.tsa, digest),
        verify_pending=pending.run_once,
    )
    return Exchange(
        relay,
        messages,
        Statuses(relay, messages, status_store, message_store, audit, config),
        mailbox,
        administration,
        Trail(messages, status_store, mailbox_store, audit, trust.check_token),
        authenticator,
        worker,
        config,
        pending,
    )
