"""The one Flask app factory: every blueprint of Kyso is mounted here, the same way.

The services come from the composition root (:mod:`kyso.services`); each HTTP module exposes
``init_app(app, services)`` (Flask's convention) and :func:`build_app` calls them in one loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Flask, Response, jsonify

from certs import http as pki_http
from certs import patches
from certs.clock import utcnow
from exchange import http as exchange_http

from . import api, problems, web, web_certificates, web_exchange
from .config import Settings
from .quiet import quiet_third_party_warnings
from .secrets import flask_secret_key
from .services import SERVICES_KEY, Root, Services

SESSION_LIFETIME = dt.timedelta(hours=8)

# Mounted in this order; the error handlers (problems) come last.
HTTP_MODULES: tuple[Callable[[Flask, Services], None], ...] = (
    pki_http.init_app,
    api.init_app,
    exchange_http.init_app,
    web.init_app,
    web_exchange.init_app,
    web_certificates.init_app,
    problems.init_app,
)

__all__ = ["SERVICES_KEY", "build_app", "create_app", "prepare_process"]


def prepare_process() -> None:
    """Quiet other libraries' warnings and install the library patches (:mod:`certs.patches`),
    before the services read anything: once per process that serves (idempotent)."""
    quiet_third_party_warnings()
    patches.install()


def create_app(
    settings: Settings, passphrase: bytes, clock: Callable[[], dt.datetime] = utcnow
) -> Flask:
    """Build the services (:class:`kyso.services.Root`: the database migrated, the PKI and its
    service keys…), then the app serving them.

    ``clock`` is the time of the login limits (tests move it instead of sleeping). Also
    prepares the process (:func:`prepare_process`): each gunicorn worker too, which builds its
    own app after the fork.
    """
    prepare_process()
    return build_app(Root(settings, lambda: passphrase, clock).services)


def build_app(services: Services) -> Flask:
    """The app serving ``services``: every HTTP module mounted by its ``init_app``, and the
    relay's push / checkpoint worker started unless ``KYSO_EXCHANGE_WORKER=0``."""
    settings = services.settings
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        SECRET_KEY=flask_secret_key(settings),
        SESSION_COOKIE_NAME="kyso_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions[SERVICES_KEY] = services
    for init_app in HTTP_MODULES:
        init_app(app, services)
    _add_health_and_headers(app)
    if services.exchange.config.worker:
        services.exchange.worker.start()
    return app


def _add_health_and_headers(app: Flask) -> None:
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
