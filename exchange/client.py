"""A client of the relay for agency systems: the ``kyso send / inbox / status / trail`` commands
and the tests use it. It signs every request (:func:`exchange.wire.sign_request`), builds and
signs packages and statuses, and checks what the relay sends back.

It runs at the agency, not at the relay: it imports the wire format (:mod:`exchange.wire`) and
never the relay's modules, its database or Flask (an import-linter contract says so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mimetypes
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from certs.keystore import SigningKey
from signer import edxml, xml_signing
from signer.errors import SignerError
from signer.policy import ValidationPolicy
from signer.report import Report

from .receipts import read_receipt
from .status_names import CODE_NAMES
from .wire import detach, sign_request

MULTIPART_ABOVE = 4 * 1024 * 1024


class RelayError(Exception):
    """The relay answered with a problem (or not at all)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code", "error"))
        super().__init__(f"{status} {self.code}: {problem.get('detail') or problem.get('title')}")


# Who the trail says signed the relay's receipt and its own statuses.
RELAY = "relay"


@dataclass(frozen=True)
class Credential:
    """An agency's (or admin's) API key, as kept in its 0600 JSON file."""

    key_id: str
    secret: str = field(repr=False)
    role: str
    agency: str | None
    url: str

    @classmethod
    def load(cls, path: Path) -> Credential:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["key_id"], data["secret"], data["role"], data.get("agency"), data["url"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(
                {
                    "key_id": self.key_id,
                    "secret": self.secret,
                    "role": self.role,
                    "agency": self.agency,
                    "url": self.url,
                },
                file,
                indent=2,
            )
            file.write("\n")


@dataclass(frozen=True)
class Sent:
    """The relay's answer to a send."""

    message_id: str
    package_sha256: str
    receipt_xml: bytes
    created: bool
    # "verified"; "pending": the relay holds it until its signature can be verified, then
    # sends a status (01 delivered, 02 refused); "refused": it was, after being held.
    verification: str = "verified"


class RelayClient:
    """Signed requests to one relay with one credential."""

    def __init__(
        self,
        credential: Credential,
        url: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 120,
    ) -> None:
        self.credential = credential
        self.url = (url or credential.url).rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        json_body: Any = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: dict[str, str] | None = None,
        ok: Sequence[int] = (),
    ) -> requests.Response:
        prepared = requests.Request(
            method,
            self.url + path,
            params=params,
            data=data,
            json=json_body,
            files=files,
            headers=headers or {},
        ).prepare()
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        parts = urlsplit(prepared.url or "")
        prepared.headers["Authorization"] = sign_request(
            self.credential.key_id,
            self.credential.secret,
            method,
            parts.path,
            parts.query,
            body,
        )
        response = self.session.send(prepared, timeout=self.timeout)
        if response.status_code >= 400 and response.status_code not in ok:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason, "detail": response.text[:300]}
            raise RelayError(response.status_code, problem)
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    # -- sending --

    def send(
        self,
        signed_package: bytes,
        idempotency_key: str | None = None,
        multipart: bool | None = None,
    ) -> Sent:
        key = idempotency_key or str(uuid.uuid4())
        headers = {"Idempotency-Key": key}
        if multipart is None:
            multipart = len(signed_package) > MULTIPART_ABOVE
        if multipart:
            xml, parts = detach(signed_package)
            files = [("package", ("package.xml", xml, "application/xml"))]
            files += [
                (f"part{i}", (f"part{i}", part, "application/octet-stream"))
                for i, part in enumerate(parts)
            ]
            response = self.request("POST", "/api/v1/messages", files=files, headers=headers)
        else:
            headers["Content-Type"] = "application/xml"
            response = self.request(
                "POST", "/api/v1/messages", data=signed_package, headers=headers
            )
        return Sent(
            message_id=response.headers["X-Kyso-Message-Id"],
            package_sha256=response.headers["X-Kyso-Package-SHA256"],
            receipt_xml=response.content,
            created=response.status_code == 201,
            verification=response.headers.get("X-Kyso-Verification", "verified"),
        )

    def post_status(self, message_id: str, signed_status: bytes) -> dict[str, Any]:
        response = self.request(
            "POST",
            f"/api/v1/messages/{message_id}/status",
            data=signed_status,
            headers={"Content-Type": "application/xml"},
        )
        result: dict[str, Any] = response.json()
        return result

    # -- reading --

    def inbox(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("/api/v1/inbox", after=after, limit=limit)
        return result

    def ack(self, item_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/inbox/{item_id}/ack").json()
        return result

    def message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/api/v1/messages/{message_id}")
        return result

    def package(self, message_id: str) -> bytes:
        return self.request("GET", f"/api/v1/messages/{message_id}/package").content

    def download(self, href: str) -> bytes:
        return self.request("GET", href).content

    def trail(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/api/v1/messages/{message_id}/trail")
        return result

    def directory(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("/api/v1/directory")
        return result


# --- Building what agencies sign ---------------------------------------------------------------


def organization(directory: dict[str, Any], code: str) -> edxml.Organization:
    for agency in directory["agencies"]:
        if agency["code"] == code:
            return edxml.Organization(code, agency["name"])
    return edxml.Organization(code, code)


def attachment_for(path: Path, index: int) -> edxml.Attachment:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return edxml.Attachment(
        content_id=f"cid:{index + 1}-{uuid.uuid4().hex[:8]}",
        name=path.name,
        content_type=content_type,
        data=path.read_bytes(),
    )


def build_package(
    sender: edxml.Organization,
    recipients: Sequence[edxml.Organization],
    attachments: Sequence[edxml.Attachment],
    *,
    subject: str,
    number: str,
    notation: str,
    signer_name: str,
    place: str = "",
    document_type: str = "Công văn",
    doc_type: edxml.BusinessDocType = edxml.BusinessDocType.NEW,
    reason: str = "",
    response_for: Sequence[edxml.ResponseFor] = (),
    today: dt.date | None = None,
) -> bytes:
    """An unsigned edXML package (validated against the schema)."""
    now = dt.datetime.now(edxml.VN_TZ)
    package = edxml.Package(
        sender=sender,
        recipients=tuple(recipients),
        code=edxml.DocumentCode(number, notation),
        place=place or sender.organ_name,
        promulgation_date=today or now.date(),
        document_type=edxml.DocumentType("1", document_type),
        subject=subject,
        signer_info=edxml.SignerInfo(signer_name),
        response_for=tuple(response_for),
        trace=(edxml.TraceHeader(sender.organ_id, now.replace(microsecond=0)),),
        business=edxml.Business(doc_type=doc_type, reason=reason),
        attachments=tuple(attachments),
    )
    return edxml.build_package(package)


def response_for(message: dict[str, Any]) -> edxml.ResponseFor:
    """The ResponseFor of a message as the relay describes it."""
    document_id = str(message["document_id"])
    organ_id, day, _ = document_id.split(",", 2)
    return edxml.ResponseFor(organ_id, str(message["code"]), edxml.parse_date(day), document_id)


def build_status(
    message: dict[str, Any],
    sender: edxml.Organization,
    code: str,
    description: str = "",
    staff: str = "",
) -> bytes:
    """An unsigned status message about ``message`` (as :meth:`RelayClient.message` gives)."""
    status = edxml.StatusMessage(
        response_for=response_for(message),
        sender=sender,
        code=edxml.StatusCode(CODE_NAMES.get(code, code)),
        timestamp=dt.datetime.now(edxml.VN_TZ).replace(microsecond=0),
        description=description,
        staff=edxml.StaffInfo(staff=staff) if staff else None,
    )
    return edxml.build_status(status)


def sign(data: bytes, key: SigningKey) -> bytes:
    return xml_signing.sign_xml(data, key)


# --- Checking what the relay returns -------------------------------------------------------------


@dataclass
class Check:
    """One signed document of a trail, checked."""

    what: str
    href: str
    ok: bool
    detail: str
    report: Report | None = None


def check_receipt(
    receipt_xml: bytes, policy: ValidationPolicy, message_id: str, package_sha256: str
) -> Check:
    """The receipt is signed by the relay and names this message and these bytes."""
    try:
        verification = xml_signing.verify_document(receipt_xml, policy, "receipt.xml")
    except SignerError as exc:
        return Check("receipt", "", False, str(exc))
    report = verification.report
    if not report.passed or verification.signed_content is None:
        details = "; ".join(report.signatures[0].details[:2])
        return Check("receipt", "", False, f"signature not valid: {details}", report)
    info = read_receipt(verification.signed_content)
    if info.message_id != message_id or info.package_sha256 != package_sha256:
        return Check("receipt", "", False, "the receipt names another message or package", report)
    signer = report.signatures[0]
    return Check(
        "receipt",
        "",
        True,
        f"signed by {signer.signer.common_name if signer.signer else '?'} at "
        f"{info.received_at.isoformat()}, timestamp {signer.timestamp_time}",
        report,
    )


def verify_trail(
    client: RelayClient, trail: dict[str, Any], policy: ValidationPolicy
) -> list[Check]:
    """Download every receipt and status of a trail and check its signature and binding."""
    message = trail["message"]
    checks = []
    for event in trail["trail"]:
        data = client.download(event["href"])
        if hashlib.sha256(data).hexdigest() != event["sha256"]:
            checks.append(Check(event["kind"], event["href"], False, "digest differs"))
            continue
        if event["kind"] == "receipt":
            check = check_receipt(data, policy, message["id"], message["package_sha256"])
            check.href = event["href"]
            checks.append(check)
            continue
        try:
            verification = xml_signing.verify_status(data, policy, "status.xml")
        except SignerError as exc:
            checks.append(Check(f"status {event['code']}", event["href"], False, str(exc)))
            continue
        report = verification.report
        signer = report.signatures[0].signer
        status = verification.status if report.passed else None
        # The relay's own statuses (a held package delivered or refused) are signed by the
        # relay, as its receipt is; a party's, by that party's seal.
        ok = (
            report.passed
            and status is not None
            and signer is not None
            and (
                event["from"] == RELAY
                or signer.agency_code == event["from"] == status.sender.organ_id
            )
            and status.response_for.document_id == message["document_id"]
            and status.code.value == event["code"]
        )
        detail = (
            f"{event['code']} signed by {signer.common_name} ({signer.agency_code})"
            if ok and signer
            else "; ".join(report.signatures[0].details[:2]) or "does not match the trail"
        )
        checks.append(Check(f"status {event['code']}", event["href"], ok, detail, report))
    return checks
