"""RFC 9457 problem details: every error the HTTP API reports, mapped in this one place.

API and PKI clients get ``application/problem+json``; a browser on the web pages gets the same
problem as a small HTML page (same status, same code).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, json, render_template, request
from werkzeug.exceptions import HTTPException

from certs.errors import AlreadyRevoked, PKIError, UnknownCertificate
from certs.services import UnknownCA
from directory import DirectoryError, UnknownAgency
from exchange import errors as exchange
from signer.errors import (
    DocumentTooLarge,
    InvalidDocument,
    SignerError,
    SigningFailed,
    UnsupportedFormat,
)
from signer.stamps import InvalidStamp

from .errors import (
    AuthenticationRequired,
    Conflict,
    CsrfFailed,
    InvalidCredentials,
    InvalidRequest,
    InvalidToken,
    KeyNotAllowed,
    KeyUnavailable,
    NotFound,
    PermissionDenied,
    PersonalKeyNotAllowed,
    RateLimited,
)
from .services import Services

log = logging.getLogger(__name__)

# Domain exception → (HTTP status, stable code). Flask picks the most specific class.
DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (UnknownCA, 404, "unknown-ca"),
    (UnknownCertificate, 404, "unknown-certificate"),
    (UnknownAgency, 404, "unknown-agency"),
    (AlreadyRevoked, 409, "already-revoked"),
    (DirectoryError, 422, "invalid-directory"),
    (PKIError, 422, "pki-error"),
    # the service: requests, accounts, tokens
    (InvalidRequest, 400, "invalid-request"),
    (AuthenticationRequired, 401, "authentication-required"),
    (InvalidCredentials, 401, "invalid-credentials"),
    (InvalidToken, 401, "invalid-token"),
    (PermissionDenied, 403, "forbidden"),
    (KeyNotAllowed, 403, "key-not-allowed"),
    (PersonalKeyNotAllowed, 403, "personal-key-not-allowed"),
    (CsrfFailed, 403, "csrf-failed"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "rate-limited"),
    (KeyUnavailable, 503, "key-unavailable"),
    # documents
    (DocumentTooLarge, 413, "document-too-large"),
    (UnsupportedFormat, 415, "unsupported-format"),
    (InvalidDocument, 422, "invalid-document"),
    (InvalidStamp, 422, "invalid-stamp"),
    (SigningFailed, 422, "signing-failed"),
    (SignerError, 422, "invalid-document"),
    # the exchange relay
    (exchange.ExchangeError, 422, "exchange-error"),
    (exchange.BadRequest, 400, "invalid-request"),
    (exchange.Unauthenticated, 401, "unauthenticated"),
    (exchange.Forbidden, 403, "forbidden"),
    (exchange.SenderMismatch, 403, "sender-mismatch"),
    (exchange.CertificateRefused, 403, "certificate-refused"),
    (exchange.RoutingDenied, 403, "routing-denied"),
    (exchange.UnknownMessage, 404, "unknown-message"),
    (exchange.IdempotencyConflict, 409, "idempotency-conflict"),
    (exchange.InvalidTransition, 409, "invalid-status-transition"),
    (exchange.DuplicateStatus, 409, "duplicate-status"),
    (exchange.PackageTooLarge, 413, "package-too-large"),
    (exchange.PushUrlRefused, 422, "push-url-refused"),
    (exchange.TooManyRefusals, 429, "rate-limited"),
    (exchange.UnknownRecipient, 422, "unknown-recipient"),
    (exchange.InvalidPackage, 422, "invalid-package"),
    (exchange.UnsignedDocument, 422, "unsigned"),
    (exchange.SignatureRejected, 422, "signature-invalid"),
]

_PLAIN_PREFIXES = ("/api/", "/pki/", "/healthz", "/metrics")


def _wants_html() -> bool:
    if request.path.startswith(_PLAIN_PREFIXES):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    headers: dict[str, str] | None = None,
    extensions: dict[str, object] | None = None,
) -> Response:
    body: dict[str, object] = {
        "type": f"urn:kyso:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)  # RFC 9457 extension members (e.g. a validation report)
    if _wants_html():
        try:
            html = render_template("error.html", problem=body)
        except Exception:  # an error page must never fail: fall back to JSON
            log.exception("error page failed")
        else:
            response = Response(html, status=status, mimetype="text/html")
            response.headers.update(headers or {})
            return response
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    response.headers.update(headers or {})
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "-")


def _extra_headers(exc: Exception) -> dict[str, str]:
    if isinstance(exc, RateLimited | exchange.TooManyRefusals):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, AuthenticationRequired) and request.path.startswith("/api/"):
        return {"WWW-Authenticate": 'Bearer realm="kyso"'}
    if isinstance(exc, exchange.Unauthenticated):
        return {"WWW-Authenticate": 'Kyso-HMAC-SHA256 realm="kyso-exchange"'}
    return {}


def init_app(app: Flask, services: Services) -> None:
    """Install the error handlers on ``app`` (they need none of its ``services``)."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        kept = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        return problem(status, _http_code(exc), exc.name or "Error", exc.description or "", kept)

    for cls, status, code in DOMAIN_ERRORS:

        def handler(exc: Exception, status: int = status, code: str = code) -> Response:
            extensions = getattr(exc, "extensions", None)
            return problem(
                status, code, type(exc).__name__, str(exc), _extra_headers(exc), extensions
            )

        app.register_error_handler(cls, handler)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "internal-error", "Internal Server Error", "the error was logged")
