"""The ``/api/v1`` exchange blueprint: thin handlers over the relay's use cases.

Each handler authenticates (API key + request signature, or a TLS client certificate handed
over by the TLS terminator), parses its input, calls one use case of
:class:`exchange.service.Exchange` and returns its records as JSON (:mod:`exchange.views`).
Errors are domain exceptions, turned into problem details by kyso/problems.py.

| method | path                                        | what                                  |
|--------|---------------------------------------------|---------------------------------------|
| POST   | /api/v1/messages                            | send a signed package → signed receipt |
| GET    | /api/v1/messages/{id}                       | metadata and per-recipient states     |
| GET    | /api/v1/messages/{id}/package               | the signed package (attachments inline)|
| GET    | /api/v1/messages/{id}/attachments/{sha256}  | one attachment                        |
| GET    | /api/v1/messages/{id}/receipt               | the relay's signed receipt (sender)   |
| POST   | /api/v1/messages/{id}/status                | a signed status message               |
| GET    | /api/v1/messages/{id}/statuses/{n}          | a status as the original signed XML   |
| GET    | /api/v1/messages/{id}/trail                 | the whole signed lifecycle            |
| GET    | /api/v1/inbox?after=CURSOR&limit=N          | unacknowledged items after the cursor |
| POST   | /api/v1/inbox/{n}/ack                       | acknowledge one item                  |
| GET    | /api/v1/outbox                              | messages sent, with their states      |
| GET    | /api/v1/directory                           | agencies, certificates, allowed peers |
| PUT    | /api/v1/push-endpoint                       | {"url": …} (DELETE to stop pushing)   |
| GET    | /api/v1/admin/dead-letters                  | undeliverable pushes (admin, auditor) |
| POST   | /api/v1/admin/dead-letters/{n}/retry        | push it again (admin)                 |
| PUT    | /api/v1/admin/agencies/{code}               | add or change an agency (admin)       |
| GET    | /api/v1/audit?after=SEQ                     | the audit log (auditor, admin)        |
| GET    | /api/v1/audit/verify                        | recompute the chain (auditor, admin)  |
| GET    | /metrics                                    | refusal counters, Prometheus text     |

A request refused before anyone is identified is counted, not chained (exchange/refusals.py).
``/metrics`` answers without credentials only to ``KYSO_METRICS_NETWORKS`` (none by default:
a scraper cannot make Kyso-HMAC signatures, but behind a TLS terminator on the same host every
client would pass a loopback rule); anyone else needs an admin's or auditor's credential.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from directory import Agency, DirectoryError

from . import views
from .auth import RELAY_KINDS, Principal, decode_client_certificate, from_networks
from .errors import (
    BadRequest,
    Forbidden,
    InvalidPackage,
    PackageTooLarge,
    Refusal,
    Unauthenticated,
)
from .identity import Presented
from .refusals import METRICS_CONTENT_TYPE, Limiter, Refusals
from .service import Exchange

blueprint = Blueprint("exchange", __name__, url_prefix="/api/v1")
metrics_blueprint = Blueprint("exchange_metrics", __name__)

EXTENSION_KEY = "kyso.exchange"
REFUSALS_KEY = "kyso.exchange.refusals"
XML = "application/xml"
XML_TYPES = ("application/xml", "text/xml", "application/edxml+xml")
MULTIPART_SLACK = 64 * 1024


def _exchange() -> Exchange:
    exchange: Exchange = current_app.extensions[EXTENSION_KEY]
    return exchange


def _refusals() -> Refusals:
    refusals: Refusals = current_app.extensions[REFUSALS_KEY]
    return refusals


def _principal() -> Principal:
    principal: Principal = g.kyso_principal
    return principal


def _client_certificate() -> bytes | None:
    config = _exchange().config
    header = config.client_cert_header
    if header and request.headers.get(header):
        # Only the TLS terminator may vouch for a certificate: from anyone else the header is
        # a claim by whoever knows an agency's (public) certificate.
        if not from_networks(request.remote_addr, config.client_cert_proxies):
            raise Unauthenticated(
                f"{header} is only accepted from the TLS proxy, not from {request.remote_addr}",
                Refusal.UNTRUSTED_PROXY,
            )
        return decode_client_certificate(request.headers[header])
    pem = request.environ.get("SSL_CLIENT_CERT")
    return pem.encode() if isinstance(pem, str) and pem.strip() else None


@blueprint.before_request
def _authenticate() -> None:
    g.kyso_principal = _authenticated()


def _authenticated() -> Principal:
    """Who sent this request. A refusal here has no principal to chain it to: it is counted
    (and limited per address) by :class:`Refusals`, never written to the audit log."""
    try:
        return _identify(_exchange())
    except Unauthenticated as exc:
        _refusals().refuse(exc.reason, request.remote_addr)
        raise
    except PackageTooLarge:
        _refusals().refuse(Refusal.TOO_LARGE, request.remote_addr)
        raise


def _identify(exchange: Exchange) -> Principal:
    limit = exchange.config.max_package_bytes + MULTIPART_SLACK
    if request.content_length is not None and request.content_length > limit:
        # Refused unread: the signature covers the body, so nobody can be identified first.
        raise PackageTooLarge(
            f"the request is {request.content_length} bytes; the relay accepts at most {limit}"
        )
    authorization = request.headers.get("Authorization")
    presented = Presented(
        authorization,
        None if authorization else _client_certificate(),
        request.method,
        request.path,
        request.query_string.decode("latin-1"),
        request.get_data(cache=True),
    )
    return exchange.authenticator.authenticate(presented, RELAY_KINDS)


def _xml(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(data, status=status, mimetype=XML)
    response.headers.update(headers or {})
    return response


def _int_arg(name: str, default: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("send a JSON object")
    return data


def agency_from_json(code: str, data: dict[str, Any]) -> Agency:
    """The agency ``code`` as ``PUT /admin/agencies/{code}`` describes it."""
    try:
        return Agency(
            code=code,
            name=str(data["name"]),
            level=str(data["level"]),
            parent=data.get("parent"),
            province=str(data.get("province", "")),
            email=str(data.get("email", "")),
            address=str(data.get("address", "")),
        )
    except (KeyError, TypeError) as exc:
        raise DirectoryError(f"the agency lacks a field: {exc}") from None


def _package_from_request() -> tuple[bytes, list[bytes]]:
    if request.mimetype == "multipart/form-data":
        package = request.files.get("package")
        if package is None:
            raise InvalidPackage("the multipart request has no 'package' part")
        parts = [f.read() for name, f in request.files.items(multi=True) if name != "package"]
        return package.read(), parts
    if request.mimetype in XML_TYPES:
        return request.get_data(cache=True), []
    raise InvalidPackage("send the package as application/xml, or multipart/form-data")


# --- Messages --------------------------------------------------------------------------------


@blueprint.post("/messages")
def send() -> Response:
    xml, parts = _package_from_request()
    accepted = _exchange().relay.accept(
        _principal(), xml, parts, request.headers.get("Idempotency-Key")
    )
    message = accepted.message
    return _xml(
        accepted.receipt_xml,
        201 if accepted.created else 200,
        {
            "Location": views.message_href(message.id),
            "X-Kyso-Message-Id": message.id,
            "X-Kyso-Package-SHA256": message.package_sha256,
            "X-Kyso-Receipt-SHA256": message.receipt_sha256,
            # "pending": received and receipted, but delivered only once verified.
            "X-Kyso-Verification": message.verification,
        },
    )


@blueprint.get("/messages/<message_id>")
def message(message_id: str) -> Response:
    return jsonify(views.message(_exchange().messages.view(_principal(), message_id)))


@blueprint.get("/messages/<message_id>/package")
def package(message_id: str) -> Response:
    return _xml(_exchange().messages.package(_principal(), message_id))


@blueprint.get("/messages/<message_id>/attachments/<sha256>")
def attachment(message_id: str, sha256: str) -> Response:
    record, data = _exchange().messages.attachment(_principal(), message_id, sha256)
    response = Response(data, mimetype=record.content_type or "application/octet-stream")
    # RFC 6266 / 5987: the (Vietnamese) file name survives as UTF-8.
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(record.name)}"
    return response


@blueprint.get("/messages/<message_id>/receipt")
def receipt(message_id: str) -> Response:
    return _xml(_exchange().messages.receipt(_principal(), message_id))


@blueprint.post("/messages/<message_id>/status")
def status(message_id: str) -> tuple[Response, int]:
    if request.mimetype not in XML_TYPES:
        raise InvalidPackage("send the signed status message as application/xml")
    found = _exchange().statuses.submit(_principal(), message_id, request.get_data(cache=True))
    return jsonify(views.status_received(found)), 201


@blueprint.get("/messages/<message_id>/statuses/<int:status_id>")
def status_xml(message_id: str, status_id: int) -> Response:
    return _xml(_exchange().messages.status_xml(_principal(), message_id, status_id))


@blueprint.get("/messages/<message_id>/trail")
def trail(message_id: str) -> Response:
    return jsonify(views.trail(_exchange().trail.message_trail(_principal(), message_id)))


# --- Inbox, outbox, directory ----------------------------------------------------------------


@blueprint.get("/inbox")
def inbox() -> Response:
    page = _exchange().mailbox.inbox(_principal(), _int_arg("after", 0), _int_arg("limit", 100))
    return jsonify(views.inbox(page))


@blueprint.post("/inbox/<int:delivery_id>/ack")
def ack(delivery_id: int) -> Response:
    return jsonify(views.acknowledged(_exchange().mailbox.ack(_principal(), delivery_id)))


@blueprint.get("/outbox")
def outbox() -> Response:
    sent = _exchange().messages.outbox(_principal(), _int_arg("limit", 100))
    return jsonify({"items": [views.sent(m) for m in sent]})


@blueprint.get("/directory")
def directory() -> Response:
    return jsonify(views.directory(_exchange().administration.directory_view(_principal())))


@blueprint.put("/push-endpoint")
def set_push() -> Response:
    url = _json_body().get("url")
    if not isinstance(url, str):
        raise BadRequest('give the endpoint as {"url": "https://…"}')
    return jsonify(views.push_endpoint(_exchange().mailbox.set_push_endpoint(_principal(), url)))


@blueprint.delete("/push-endpoint")
def delete_push() -> Response:
    return jsonify(views.push_endpoint(_exchange().mailbox.set_push_endpoint(_principal(), None)))


# --- Administration and audit ----------------------------------------------------------------


@blueprint.get("/admin/dead-letters")
def dead_letters() -> Response:
    dead = _exchange().mailbox.dead_letters(_principal())
    return jsonify({"items": [views.dead_letter(d) for d in dead]})


@blueprint.post("/admin/dead-letters/<int:delivery_id>/retry")
def retry(delivery_id: int) -> Response:
    _exchange().mailbox.revive(_principal(), delivery_id)
    return jsonify({"id": delivery_id, "retrying": True})


@blueprint.put("/admin/agencies/<code>")
def put_agency(code: str) -> tuple[Response, int]:
    agency = agency_from_json(code, _json_body())
    created = _exchange().administration.upsert_agency(_principal(), agency)
    return jsonify({"code": code, "created": created}), 201 if created else 200


@blueprint.get("/audit")
def audit_log() -> Response:
    events = _exchange().trail.events(_principal(), _int_arg("after", 0), _int_arg("limit", 100))
    return jsonify(
        {"items": [e.to_dict() for e in events], "next": events[-1].seq if events else None}
    )


@blueprint.get("/audit/verify")
def audit_verify() -> Response:
    return jsonify(_exchange().trail.verify(_principal()).to_dict())


# --- Metrics ---------------------------------------------------------------------------------


@metrics_blueprint.get("/metrics")
def metrics() -> Response:
    """The refusal counters: to the metrics networks as they are, to others for an admin or
    auditor credential (a refused try is itself counted)."""
    scraper = from_networks(request.remote_addr, _exchange().config.metrics_networks)
    if not scraper and not _authenticated().reads_everything:
        raise Forbidden("the metrics are for admins and auditors")
    return Response(_refusals().exposition(), content_type=METRICS_CONTENT_TYPE)


class HasExchange(Protocol):
    """What :func:`init_app` needs of the app's services."""

    @property
    def exchange(self) -> Exchange: ...

    @property
    def limiter(self) -> Limiter: ...


def init_app(app: Flask, services: HasExchange) -> None:
    """Mount the blueprints on ``app``, serving ``services.exchange``; ``services.limiter``
    keeps the per-address count of refused requests. The push / checkpoint worker is the
    app factory's to start."""
    exchange = services.exchange
    app.extensions[EXTENSION_KEY] = exchange
    app.extensions[REFUSALS_KEY] = Refusals(
        services.limiter, exchange.config.auth_failures_per_minute
    )
    app.register_blueprint(blueprint)
    app.register_blueprint(metrics_blueprint)
