"""The ``/pki`` blueprint: CRLs, CA certificates, OCSP (RFC 6960) and the TSA (RFC 3161).

Handlers only translate HTTP to the services in :mod:`certs.services` and back. Protocol errors
are answered in the protocol's own terms (OCSP ``malformedRequest``, TSA ``rejection``); HTTP
errors (wrong media type, body too large) are problem details from the app's error handlers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from .ocsp import MAX_REQUEST_BYTES as MAX_OCSP_BYTES
from .services import PkiServices
from .tsa import MAX_REQUEST_BYTES as MAX_TSA_BYTES

blueprint = Blueprint("pki", __name__, url_prefix="/pki")

EXTENSION_KEY = "kyso.pki"


class HasPkiServices(Protocol):
    """What :func:`init_app` needs of the app's services."""

    @property
    def pki_services(self) -> PkiServices: ...


def init_app(app: Flask, services: HasPkiServices) -> None:
    """Mount ``/pki`` on ``app``, answering with ``services.pki_services``."""
    app.extensions[EXTENSION_KEY] = services.pki_services
    app.register_blueprint(blueprint)


def _services() -> PkiServices:
    services: PkiServices = current_app.extensions[EXTENSION_KEY]
    return services


def _body(media_type: str, limit: int) -> bytes:
    if request.mimetype != media_type:
        raise UnsupportedMediaType(f"send the request as {media_type}")
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"requests are limited to {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge(f"requests are limited to {limit} bytes")
    return data


def _der(body: bytes, media_type: str, max_age: int = 0) -> Response:
    response = Response(body, mimetype=media_type)
    response.headers["Cache-Control"] = f"max-age={max_age}" if max_age else "no-store"
    return response


@blueprint.get("/crl/<ca_name>.crl")
def crl(ca_name: str) -> Response:
    return _der(_services().crl(ca_name), "application/pkix-crl", max_age=300)


@blueprint.get("/ca/<ca_name>.crt")
def ca_certificate(ca_name: str) -> Response:
    return _der(_services().ca_certificate_der(ca_name), "application/pkix-cert", max_age=3600)


@blueprint.post("/ocsp")
def ocsp_post() -> Response:
    answer = _services().ocsp.respond(_body("application/ocsp-request", MAX_OCSP_BYTES))
    return _der(answer, "application/ocsp-response")


@blueprint.get("/ocsp/<path:encoded>")
def ocsp_get(encoded: str) -> Response:
    # RFC 6960 A.1: GET carries the DER request, base64- then URL-encoded, in the path.
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    return _der(_services().ocsp.respond(der), "application/ocsp-response")


@blueprint.post("/tsa")
def tsa() -> Response:
    answer = _services().tsa.respond(_body("application/timestamp-query", MAX_TSA_BYTES))
    return _der(answer, "application/timestamp-reply")
