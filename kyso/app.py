"""The one Flask app factory: every blueprint of Kyso is mounted here."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from certs import http as pki_http
from certs.layout import PkiLayout
from certs.pki import Pki
from certs.services import PkiServices
from certs.store import CertificateStore

from . import problems
from .config import Settings
from .db import make_engine, upgrade

MAX_BODY_BYTES = 110 * 1024 * 1024


def create_app(settings: Settings, passphrase: bytes) -> Flask:
    """Build the app: open the database (migrated), the PKI and its service keys."""
    engine = make_engine(settings.db_url)
    upgrade(engine)
    pki = Pki(PkiLayout(settings.pki_dir), CertificateStore(engine))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["kyso.settings"] = settings
    app.extensions["kyso.engine"] = engine
    app.extensions[pki_http.EXTENSION_KEY] = PkiServices.load(pki, passphrase)
    app.register_blueprint(pki_http.blueprint)
    problems.register(app)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
