"""RFC 9457 problem details: every error the HTTP API reports, mapped in this one place."""

from __future__ import annotations

import logging

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from certs.errors import AlreadyRevoked, PKIError, UnknownCertificate
from certs.services import UnknownCA
from exchange.directory import DirectoryError, UnknownAgency

log = logging.getLogger(__name__)

# Domain exception → (HTTP status, stable code). The first matching class wins.
DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (UnknownCA, 404, "unknown-ca"),
    (UnknownCertificate, 404, "unknown-certificate"),
    (UnknownAgency, 404, "unknown-agency"),
    (AlreadyRevoked, 409, "already-revoked"),
    (DirectoryError, 422, "invalid-directory"),
    (PKIError, 422, "pki-error"),
]


def problem(status: int, code: str, title: str, detail: str = "") -> Response:
    body = {"type": f"urn:kyso:problem:{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "-")


def register(app: Flask) -> None:
    """Install the error handlers on ``app``."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        return problem(status, _http_code(exc), exc.name or "Error", exc.description or "")

    for cls, status, code in DOMAIN_ERRORS:

        def handler(exc: Exception, status: int = status, code: str = code) -> Response:
            return problem(status, code, type(exc).__name__, str(exc))

        app.register_error_handler(cls, handler)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "internal-error", "Internal Server Error", "the error was logged")
