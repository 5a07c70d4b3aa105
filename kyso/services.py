"""The composition root: the one place Kyso's object graph is built, from :class:`Settings`.

:class:`Root` builds each part (the migrated engine, the PKI and its service keys, the stores,
the signing service, the exchange relay with its authenticator and push worker, the request
limiter) once, when first asked for, from the settings, the passphrase and the clock. The
app factory (:mod:`kyso.app`) takes the whole graph, :class:`Services`, at start; a CLI command
(:class:`kyso.cli_common.Context`) takes only the parts it uses, so a command that reads the
database never decrypts a key. Each part imports its modules when it is built: ``kyso --help``
and light commands do not pay for the signing stack.

The blueprints reach the graph of the app serving them with :func:`current_services`; this
module imports no blueprint and no Flask at load time, which keeps ``kyso.app`` out of their
imports (no circle) and Flask out of the CLI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs.clock import utcnow

from .config import Settings

if TYPE_CHECKING:
    import datetime as dt

    import sqlalchemy as sa

    from certs.pki import Pki
    from certs.revocation_fetch import RevocationFetcher
    from certs.services import PkiServices
    from certs.store import CertificateStore
    from certs.trust_anchors import TrustAnchorStore
    from directory.certificates import CertificateRegistry
    from directory.store import AgencyStore
    from exchange.audit import AuditLog
    from exchange.auth import Authenticator
    from exchange.mailbox_store import MailboxStore
    from exchange.service import Exchange
    from exchange.store import ExchangeStore

    from .accounts import AccountStore
    from .identities import Identities
    from .signing import SigningService
    from .tokens import RequestLimiter, TokenStore
    from .workspace import Workspace

SERVICES_KEY = "kyso.services"  # where the app keeps its Services (app.extensions)


@dataclass(frozen=True)
class Services:
    """Everything the request handlers use, built once per process by :class:`Root`."""

    settings: Settings
    engine: sa.Engine
    pki: Pki
    pki_services: PkiServices
    accounts: AccountStore
    tokens: TokenStore
    limiter: RequestLimiter
    signing: SigningService
    workspace: Workspace
    agencies: AgencyStore
    agency_certificates: CertificateRegistry
    audit: AuditLog
    exchange: Exchange
    openapi: dict[str, Any]
    clock: Callable[[], dt.datetime]  # the time of the login limits


def current_services() -> Services:
    """The services of the app handling the current request (a Flask application context)."""
    from flask import current_app  # here: the CLI imports this module and must not load Flask

    found: Services = current_app.extensions[SERVICES_KEY]
    return found


class Root:
    """The object graph of one process, each part built on first use and kept.

    ``passphrase`` is asked (called) once, when a part first needs the PKI's keys; ``clock``
    is the time of the login limits (tests move it instead of sleeping).
    """

    def __init__(
        self,
        settings: Settings,
        passphrase: Callable[[], bytes],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self._ask_passphrase = passphrase
        self.clock = clock

    @functools.cached_property
    def passphrase(self) -> bytes:
        return self._ask_passphrase()

    # -- the database and its stores ------------------------------------------------------------

    @functools.cached_property
    def engine(self) -> sa.Engine:
        """The database, migrated to the newest schema."""
        from .db import make_engine, upgrade

        engine = make_engine(self.settings.db_url)
        upgrade(engine)
        return engine

    @functools.cached_property
    def certificates(self) -> CertificateStore:
        from certs.store import CertificateStore

        return CertificateStore(self.engine)

    @functools.cached_property
    def trust_anchors(self) -> TrustAnchorStore:
        """The CAs Kyso trusts (``kyso trust``); verifiers take its ``trust_set()``."""
        from certs.trust_anchors import TrustAnchorStore

        return TrustAnchorStore(self.engine)

    @functools.cached_property
    def revocation_fetcher(self) -> RevocationFetcher:
        """Online OCSP and CRLs for foreign certificates, through KYSO_REVOCATION_ALLOW; one
        per process, for its cache and its per-host bounds."""
        from certs.revocation_fetch import RevocationFetcher

        return RevocationFetcher(self.settings.revocation_allow)

    @functools.cached_property
    def agency_certificates(self) -> CertificateRegistry:
        """Which certificates are which agency's (``kyso directory certificate``)."""
        from directory.certificates import CertificateRegistry

        return CertificateRegistry(self.engine)

    @functools.cached_property
    def agencies(self) -> AgencyStore:
        from directory.store import AgencyStore

        return AgencyStore(self.engine)

    @functools.cached_property
    def exchange_store(self) -> ExchangeStore:
        from exchange.store import ExchangeStore

        return ExchangeStore(self.engine)

    @functools.cached_property
    def mailbox_store(self) -> MailboxStore:
        """The relay's deliveries (dead letters) for the CLI."""
        from exchange.mailbox_store import MailboxStore

        return MailboxStore(self.engine)

    @functools.cached_property
    def audit(self) -> AuditLog:
        from exchange.audit import AuditLog

        return AuditLog(self.exchange_store)

    @functools.cached_property
    def accounts(self) -> AccountStore:
        from .accounts import AccountStore, LoginLimits

        limits = LoginLimits(address_failures=self.settings.login_address_limit)
        return AccountStore(self.engine, clock=self.clock, limits=limits)

    @functools.cached_property
    def tokens(self) -> TokenStore:
        from .tokens import TokenStore

        return TokenStore(self.engine)

    # -- the PKI --------------------------------------------------------------------------------

    @functools.cached_property
    def pki(self) -> Pki:
        """The PKI of the settings' directory (it must exist: ``kyso pki init``)."""
        return self.pki_at(self.settings.pki_dir)

    def pki_at(self, directory: Path) -> Pki:
        """The PKI in ``directory``, with the CA's records in this database."""
        from certs.layout import PkiLayout
        from certs.pki import Pki

        return Pki(PkiLayout(directory), self.certificates, self.agency_certificates)

    @functools.cached_property
    def pki_services(self) -> PkiServices:
        """CRLs, OCSP and the TSA with their keys open (a wrong passphrase fails here)."""
        from certs.services import PkiServices

        return PkiServices.load(self.pki, self.passphrase)

    @functools.cached_property
    def identities(self) -> Identities:
        from certs.layout import PkiLayout

        from .identities import Identities

        return Identities(self.certificates, PkiLayout(self.settings.pki_dir))

    # -- signing, the web pages and the API -----------------------------------------------------

    @functools.cached_property
    def limiter(self) -> RequestLimiter:
        """One per process: API tokens, anonymous verifications, relay refusals."""
        from .tokens import RequestLimiter

        return RequestLimiter()

    @functools.cached_property
    def signing(self) -> SigningService:
        from certs.truststore import load_certificates
        from certs.tsa import InProcessTimeStamper

        from .signing import KeyRing, SigningService

        pki = self.pki
        return SigningService(
            self.identities,
            KeyRing(self.passphrase, self.settings.pkcs11),
            tuple(load_certificates(pki.layout.ca_certificate("root"))),
            InProcessTimeStamper(self.pki_services.tsa),
            self.pki_services.answer,
            stamp_font=self.settings.stamp_font,
            trust=self.trust_anchors.trust_set,
            revocation=self.revocation_fetcher,
        )

    @functools.cached_property
    def workspace(self) -> Workspace:
        from .workspace import Workspace

        return Workspace(self.settings.data_dir / "work", self.settings.max_upload_bytes)

    # -- the exchange relay ---------------------------------------------------------------------

    @functools.cached_property
    def authenticator(self) -> Authenticator:
        """Agency systems' credentials (sealed under the passphrase): the relay's and the CLI's."""
        from exchange.service import open_authenticator

        return open_authenticator(self.engine, self.pki, self.passphrase)

    @functools.cached_property
    def exchange(self) -> Exchange:
        """The relay, its authenticator and its push worker (not started)."""
        from exchange.service import open_exchange

        return open_exchange(
            self.engine,
            self.pki_services,
            self.passphrase,
            self.settings.data_dir,
            self.settings.relay,
            push_policy=self.settings.push_allow,
            authenticator=self.authenticator,
            anchors=self.trust_anchors.trust_set,
            revocation=self.revocation_fetcher,
        )

    # -- the whole graph ------------------------------------------------------------------------

    @functools.cached_property
    def services(self) -> Services:
        """Every part the app uses, built now (a wrong passphrase stops the start here)."""
        from .openapi import load_openapi

        return Services(
            settings=self.settings,
            engine=self.engine,
            pki=self.pki,
            pki_services=self.pki_services,
            accounts=self.accounts,
            tokens=self.tokens,
            limiter=self.limiter,
            signing=self.signing,
            workspace=self.workspace,
            agencies=self.agencies,
            agency_certificates=self.agency_certificates,
            audit=self.audit,
            exchange=self.exchange,
            openapi=load_openapi(),
            clock=self.clock,
        )
