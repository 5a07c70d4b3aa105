"""The one Flask app factory: every blueprint of Kyso is mounted here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, jsonify

from certs import http as pki_http
from certs import patches
from certs.clock import utcnow
from certs.layout import PkiLayout
from certs.pki import Pki
from certs.services import PkiServices
from certs.store import CertificateStore
from certs.truststore import load_certificates
from certs.tsa import InProcessTimeStamper
from directory.store import AgencyStore
from exchange import http as exchange_http
from exchange.service import open_exchange

from . import problems
from .accounts import AccountStore, Clock, LoginLimits
from .config import Settings
from .db import make_engine, upgrade
from .identities import Identities
from .openapi import load_openapi
from .quiet import quiet_third_party_warnings
from .secrets import flask_secret_key
from .signing import KeyRing, SigningService
from .tokens import RequestLimiter, TokenStore
from .workspace import Workspace

SERVICES_KEY = "kyso.services"
SESSION_LIFETIME = dt.timedelta(hours=8)


@dataclass
class Services:
    """Everything the request handlers use, built once per process."""

    settings: Settings
    engine: sa.Engine
    pki: Pki
    accounts: AccountStore
    tokens: TokenStore
    limiter: RequestLimiter
    signing: SigningService
    workspace: Workspace
    agencies: AgencyStore
    openapi: dict[str, Any]


def services() -> Services:
    """The services of the app handling the current request."""
    found: Services = current_app.extensions[SERVICES_KEY]
    return found


def create_app(settings: Settings, passphrase: bytes, clock: Clock = utcnow) -> Flask:
    """Build the app: open the database (migrated), the PKI and its service keys.

    ``clock`` is the time of the login limits (tests move it instead of sleeping). Also
    installs the library patches (:mod:`certs.patches`): in each gunicorn worker too, which
    builds its own app after the fork.
    """
    quiet_third_party_warnings()
    patches.install()
    from . import api, web, web_exchange

    engine = make_engine(settings.db_url)
    upgrade(engine)
    layout = PkiLayout(settings.pki_dir)
    pki = Pki(layout, CertificateStore(engine))
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        SECRET_KEY=flask_secret_key(settings.secrets_dir),
        SESSION_COOKIE_NAME="kyso_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    pki_services = PkiServices.load(pki, passphrase)
    limiter = RequestLimiter()  # one per process: API tokens, anonymous verify, relay refusals
    app.extensions["kyso.settings"] = settings
    app.extensions["kyso.engine"] = engine
    app.extensions[pki_http.EXTENSION_KEY] = pki_services
    app.extensions[SERVICES_KEY] = Services(
        settings=settings,
        engine=engine,
        pki=pki,
        accounts=AccountStore(
            engine, clock=clock, limits=LoginLimits(address_failures=settings.login_address_limit)
        ),
        tokens=TokenStore(engine),
        limiter=limiter,
        signing=SigningService(
            Identities(pki.store, layout),
            KeyRing(passphrase),
            tuple(load_certificates(layout.ca_certificate("root"))),
            InProcessTimeStamper(pki_services.tsa),
            pki_services.answer,
        ),
        workspace=Workspace(settings.data_dir / "work", settings.max_upload_bytes),
        agencies=AgencyStore(engine),
        openapi=load_openapi(),
    )
    app.register_blueprint(pki_http.blueprint)
    app.register_blueprint(api.blueprint)
    exchange = open_exchange(
        engine, pki_services, passphrase, settings.data_dir, push_policy=settings.push_allow
    )
    exchange_http.install(app, exchange, limiter)
    web.register(app)
    web_exchange.register(app)
    problems.register(app)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            )
        return response

    return app
