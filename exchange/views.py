"""The relay's records as the JSON of ``/api/v1``, with the links between them.

The use cases return records; these functions are the one place their JSON is written, for
the HTTP adapter (:mod:`exchange.http`), the push worker (whose notification is the inbox
item, :func:`inbox_item`) and the clerk's page. No Flask here: the push worker runs without it.
"""

from __future__ import annotations

from typing import Any

from signer import edxml

from .administration import DirectoryView
from .mailbox import InboxItem, InboxPage, PushEndpoint
from .mailbox_store import DeliveryRecord
from .message_store import RecipientRecord
from .messages import MessageView, Part, Received, Sent
from .status_store import RELAY_PARTY
from .statuses import StatusReceived
from .trail import MessageTrail

API = "/api/v1"


def message_href(message_id: str) -> str:
    return f"{API}/messages/{message_id}"


def status_href(message_id: str, status_id: int) -> str:
    return f"{message_href(message_id)}/statuses/{status_id}"


def meaning(code: str) -> str:
    """The Vietnamese meaning of a status code."""
    return edxml.StatusCode(code).meaning[0]


def _states(recipients: list[RecipientRecord]) -> list[dict[str, Any]]:
    return [{"agency": r.agency, "state": r.state, "answer": r.answer} for r in recipients]


def message(view: MessageView) -> dict[str, Any]:
    m, base = view.message, message_href(view.message.id)
    found: dict[str, Any] = {
        "id": m.id,
        "sender": m.sender,
        "document_id": m.document_id,
        "code": m.code,
        "subject": m.subject,
        "doc_type": m.doc_type,
        "refers_to": m.refers_to,
        "package_sha256": m.package_sha256,
        "transport": m.transport,
        "received_at": m.received_at.isoformat(),
        "recalled_at": m.recalled_at.isoformat() if m.recalled_at else None,
        "verification": m.verification,
        "recipients": _states(view.recipients),
        "attachments": [
            {
                "content_id": a.content_id,
                "name": a.name,
                "content_type": a.content_type,
                "sha256": a.sha256,
                "size": a.size,
                "href": f"{base}/attachments/{a.sha256}",
            }
            for a in view.attachments
        ],
        "package": f"{base}/package",
        "trail": f"{base}/trail",
    }
    if view.part is not Part.RECIPIENT:
        found["receipt"] = f"{base}/receipt"
    return found


def trail(found: MessageTrail) -> dict[str, Any]:
    m = found.view.message
    entries: list[dict[str, Any]] = []
    if found.receipt:
        entries.append(
            {
                "kind": "receipt",
                "code": edxml.StatusCode.ARRIVED.value,
                "meaning": "Trục liên thông đã nhận",
                "from": RELAY_PARTY,
                "at": m.received_at.isoformat(),
                "sha256": m.receipt_sha256,
                "href": f"{message_href(m.id)}/receipt",
            }
        )
    for status in found.statuses:
        entries.append(
            {
                "kind": "status",
                "id": status.id,
                "code": status.code,
                "meaning": meaning(status.code),
                "from": status.from_agency,
                "signed_at": status.signed_at.isoformat(),
                "at": status.received_at.isoformat(),
                "sha256": status.sha256,
                "href": status_href(m.id, status.id),
            }
        )
    recipients = [
        {
            "agency": p.recipient.agency,
            "state": p.recipient.state,
            "answer": p.recipient.answer,
            "delivered_at": p.delivered_at.isoformat() if p.delivered_at else None,
        }
        for p in found.recipients
    ]
    return {"message": message(found.view), "recipients": recipients, "trail": entries}


def sent(item: Sent) -> dict[str, Any]:
    m = item.message
    return {
        "id": m.id,
        "document_id": m.document_id,
        "code": m.code,
        "subject": m.subject,
        "received_at": m.received_at.isoformat(),
        "recalled_at": m.recalled_at.isoformat() if m.recalled_at else None,
        "verification": m.verification,
        "recipients": _states(item.recipients),
    }


def received(item: Received) -> dict[str, Any]:
    m = item.message
    return {
        "id": m.id,
        "sender": m.sender,
        "document_id": m.document_id,
        "code": m.code,
        "subject": m.subject,
        "received_at": m.received_at.isoformat(),
        "recalled_at": m.recalled_at.isoformat() if m.recalled_at else None,
        "state": item.own.state,
        "answer": item.own.answer,
    }


def status_received(found: StatusReceived) -> dict[str, Any]:
    return {
        "status_id": found.status_id,
        "message_id": found.message_id,
        "code": found.code,
        "meaning": meaning(found.code),
        "received_at": found.received_at.isoformat(),
        "delivered_to": list(found.delivered_to),
        "href": status_href(found.message_id, found.status_id),
    }


def inbox_item(item: InboxItem) -> dict[str, Any]:
    """An inbox item: what ``GET /inbox`` lists and the push worker posts."""
    delivery, m = item.delivery, item.message
    found: dict[str, Any] = {
        "id": delivery.id,
        "kind": delivery.kind,
        "message_id": m.id,
        "document_id": m.document_id,
        "subject": m.subject,
        "sender": m.sender,
        "created_at": delivery.created_at.isoformat(),
        "ack": f"{API}/inbox/{delivery.id}/ack",
    }
    if item.status is None:
        found.update({"from": m.sender, "code": m.code, "doc_type": m.doc_type})
        found["package"] = f"{message_href(m.id)}/package"
    else:
        status = item.status
        found.update(
            {
                "from": status.from_agency,
                "status_id": status.id,
                "code": status.code,
                "meaning": meaning(status.code),
                "href": status_href(m.id, status.id),
            }
        )
    return found


def inbox(page: InboxPage) -> dict[str, Any]:
    return {"items": [inbox_item(i) for i in page.items], "next": page.next}


def acknowledged(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "acked_at": delivery.acked_at.isoformat() if delivery.acked_at else None,
    }


def push_endpoint(endpoint: PushEndpoint) -> dict[str, Any]:
    return {"agency": endpoint.agency, "url": endpoint.url}


def dead_letter(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "agency": d.agency,
        "kind": d.kind,
        "message_id": d.message_id,
        "status_id": d.status_id,
        "attempts": d.attempts,
        "since": d.since.isoformat(),
        "dead_at": d.dead_at.isoformat() if d.dead_at else None,
        "last_error": d.last_error,
    }


def directory(view: DirectoryView) -> dict[str, Any]:
    return {
        "agencies": [
            {
                "code": a.code,
                "name": a.name,
                "level": a.level,
                "parent": a.parent,
                "province": a.province,
                "certificates": [
                    {
                        "serial": format(c.serial, "X"),
                        "profile": c.profile,
                        "common_name": c.common_name,
                        "not_after": c.not_after.isoformat(),
                        "revoked": c.revoked,
                    }
                    for c in view.certificates.get(a.code, [])
                ],
            }
            for a in view.directory
        ],
        "you": view.you,
        "you_may_send_to": view.you_may_send_to,
        "routing": view.routing,
    }
