"""edXML packages and status messages (QCVN 102:2016): build, validate, read, check digests.

The structure is fixed by ``schemas/edxml.xsd`` and ``schemas/status.xsd``; every document
Kyso builds is validated against them before it leaves this module, and every document it
reads is validated before anything looks inside. Kyso adds one thing to QCVN 102: each
manifest ``Reference`` carries the SHA-256 of its attachment, so that a changed attachment
can be named (:func:`check_attachments`).

Dates are emitted as ``yyyy/MM/dd`` and read in both ``yyyy/MM/dd`` and ``dd/MM/yyyy``.
Code lists whose values are unconfirmed (document type, priority, steering type) are plain
strings here.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from lxml import etree

from . import safexml
from .errors import InvalidDocument

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
DIGEST_ALGORITHM = "SHA-256"


def q(name: str) -> str:
    """The Clark name ``{NS}name`` of an edXML element."""
    return f"{{{NS}}}{name}"


class DocumentKind(StrEnum):
    PACKAGE = "edXML"
    STATUS = "Status"
    OTHER = "other"


class StatusCode(StrEnum):
    """Status codes of acknowledgement messages."""

    ARRIVED = "01"
    REFUSED = "02"
    REGISTERED = "03"
    ASSIGNED = "04"
    IN_PROGRESS = "05"
    DONE = "06"
    RECALLED = "13"
    AGREED = "15"
    DENIED = "16"

    @property
    def meaning(self) -> tuple[str, str]:
        """(Vietnamese, English) meaning."""
        return STATUS_MEANINGS[self]


STATUS_MEANINGS: dict[StatusCode, tuple[str, str]] = {
    StatusCode.ARRIVED: ("Đã đến", "arrived, not yet handled"),
    StatusCode.REFUSED: ("Từ chối tiếp nhận", "refused"),
    StatusCode.REGISTERED: ("Đã tiếp nhận", "registered by the clerk"),
    StatusCode.ASSIGNED: ("Phân công", "assigned for handling"),
    StatusCode.IN_PROGRESS: ("Đang xử lý", "in progress"),
    StatusCode.DONE: ("Hoàn thành", "done"),
    StatusCode.RECALLED: ("Lấy lại", "recalled by the sender"),
    StatusCode.AGREED: ("Đồng ý", "recall or update agreed"),
    StatusCode.DENIED: ("Từ chối", "recall or update refused"),
}


class BusinessDocType(IntEnum):
    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


@dataclass(frozen=True)
class Organization:
    organ_id: str
    organ_name: str
    organization_in_charge: str = ""
    organ_add: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class DocumentCode:
    number: str  # số
    notation: str  # ký hiệu


@dataclass(frozen=True)
class DocumentType:
    type: str
    type_name: str
    type_detail: str = ""


@dataclass(frozen=True)
class SignerInfo:
    full_name: str
    position: str = ""
    competence: str = ""


@dataclass(frozen=True)
class ResponseFor:
    organ_id: str
    code: str
    promulgation_date: dt.date
    document_id: str


@dataclass(frozen=True)
class StaffInfo:
    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""


@dataclass(frozen=True)
class TraceHeader:
    organ_id: str
    timestamp: dt.datetime


@dataclass(frozen=True)
class Business:
    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: str = ""
    staff: StaffInfo | None = None


@dataclass(frozen=True)
class Attachment:
    content_id: str  # "cid:…"
    name: str
    content_type: str
    data: bytes
    description: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Package:
    """One official document as an edXML package."""

    sender: Organization
    recipients: tuple[Organization, ...]
    code: DocumentCode
    place: str
    promulgation_date: dt.date
    document_type: DocumentType
    subject: str
    signer_info: SignerInfo
    content: str = ""
    due_date: dt.date | None = None
    to_places: tuple[str, ...] = ()
    priority: str = ""
    page_amount: int | None = None
    appendixes: tuple[str, ...] = ()
    response_for: tuple[ResponseFor, ...] = ()
    steering_type: str = ""
    trace: tuple[TraceHeader, ...] = ()
    business: Business | None = None
    attachments: tuple[Attachment, ...] = ()

    @property
    def document_id(self) -> str:
        """``{OrganId},{yyyy/MM/dd},{CodeNumber}/{CodeNotation}``."""
        return (
            f"{self.sender.organ_id},{format_date(self.promulgation_date)},"
            f"{self.code.number}/{self.code.notation}"
        )


@dataclass(frozen=True)
class StatusMessage:
    """One acknowledgement event about a package."""

    response_for: ResponseFor
    sender: Organization
    code: StatusCode
    timestamp: dt.datetime
    description: str = ""
    staff: StaffInfo | None = None


@dataclass(frozen=True)
class AttachmentMismatch:
    """An attachment whose bytes do not match the digest its manifest entry lists."""

    content_id: str
    name: str
    expected_sha256: str
    actual_sha256: str | None  # None: the attachment is missing or not valid base64

    def __str__(self) -> str:
        if self.actual_sha256 is None:
            return f"attachment {self.name!r} ({self.content_id}) is missing or unreadable"
        return (
            f"attachment {self.name!r} ({self.content_id}) was changed: its SHA-256 is "
            f"{self.actual_sha256}, the manifest lists {self.expected_sha256}"
        )


# --- Dates ---------------------------------------------------------------------------------


def format_date(value: dt.date) -> str:
    return f"{value:%Y/%m/%d}"


def format_datetime(value: dt.datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam time (naive values are taken as Vietnam time)."""
    if value.tzinfo is not None:
        value = value.astimezone(VN_TZ)
    return f"{value:%Y/%m/%d %H:%M:%S}"


def parse_date(text: str) -> dt.date:
    """``yyyy/MM/dd`` or ``dd/MM/yyyy``."""
    text = text.strip()
    for pattern in ("%Y/%m/%d", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise InvalidDocument(f"{text!r} is not a date (yyyy/MM/dd or dd/MM/yyyy)")


def parse_datetime(text: str) -> dt.datetime:
    """A date with an optional ``HH:mm[:ss]``, in Vietnam time."""
    day, _, time = text.strip().partition(" ")
    moment = dt.datetime.combine(parse_date(day), dt.time(), tzinfo=VN_TZ)
    if time:
        try:
            clock = dt.time.fromisoformat(time)
        except ValueError:
            raise InvalidDocument(f"{text!r} is not a date and time") from None
        moment = moment.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
    return moment


# --- Schemas -------------------------------------------------------------------------------


def schema(kind: DocumentKind) -> etree.XMLSchema:
    """This thread's compiled XSD of ``kind``.

    One per thread, because an ``XMLSchema`` keeps the last validation's error log on
    itself; compiled under a process-wide lock, because libxml2 sets up its built-in XSD
    types on the first compilation without a lock of its own: two threads compiling at once
    in a fresh process (a gunicorn worker's first requests) broke every later compilation
    with "the given type is not a built-in type".
    """
    compiled: dict[DocumentKind, etree.XMLSchema] = _schemas.__dict__.setdefault("by_kind", {})
    if kind not in compiled:
        file = {DocumentKind.PACKAGE: "edxml.xsd", DocumentKind.STATUS: "status.xsd"}[kind]
        with _SCHEMA_COMPILATION:
            document = etree.parse(str(SCHEMA_DIR / file), safexml.secure_parser())
            compiled[kind] = etree.XMLSchema(document)
    return compiled[kind]


_schemas = threading.local()
_SCHEMA_COMPILATION = threading.Lock()


def document_kind(root: Any) -> DocumentKind:
    """What ``root`` claims to be, from its name and namespace alone."""
    for kind in (DocumentKind.PACKAGE, DocumentKind.STATUS):
        if root.tag == q(kind.value):
            return kind
    return DocumentKind.OTHER


def validate(tree: Any) -> DocumentKind:
    """Validate a parsed edXML package or status message against its schema.

    Documents of other kinds pass through (their kind is returned). Raises
    :class:`InvalidDocument` naming the first schema violation.
    """
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    kind = document_kind(root)
    if kind is DocumentKind.OTHER:
        return kind
    checker = schema(kind)
    if not checker.validate(root.getroottree()):
        error = checker.error_log.last_error
        what = "edXML package" if kind is DocumentKind.PACKAGE else "status message"
        raise InvalidDocument(f"not a valid {what}: line {error.line}: {error.message}")
    if kind is DocumentKind.STATUS:
        _check_status_rules(root)
    return kind


def _check_status_rules(root: Any) -> None:
    code = _text(root, "StatusCode")
    if code == StatusCode.REFUSED and not _text(root, "Description").strip():
        raise InvalidDocument("not a valid status message: status 02 (refused) needs a reason")


def signature_parent(root: Any) -> Any:
    """Where an enveloped ds:Signature goes: edXMLHeader for packages, the root otherwise.

    QCVN 102 puts the package signature last in edXMLHeader; status messages and other
    documents carry it as the last child of their root.
    """
    if document_kind(root) is DocumentKind.PACKAGE:
        header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
        if header is None:
            raise InvalidDocument("not a valid edXML package: no edXMLHeader")
        return header
    return root


# --- Building ------------------------------------------------------------------------------


class _Builder:
    """Appends edXML children in schema order, skipping empty optional values."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent

    def add(self, name: str, text: str | None = None) -> Any:
        element = etree.SubElement(self.parent, q(name))
        if text is not None:
            element.text = text
        return element

    def optional(self, name: str, text: str | None) -> None:
        if text:
            self.add(name, text)

    def organization(self, name: str, org: Organization) -> None:
        b = _Builder(self.add(name))
        b.add("OrganId", org.organ_id)
        b.optional("OrganizationInCharge", org.organization_in_charge)
        b.add("OrganName", org.organ_name)
        b.optional("OrganAdd", org.organ_add)
        b.optional("Email", org.email)
        b.optional("Telephone", org.telephone)
        b.optional("Fax", org.fax)
        b.optional("Website", org.website)

    def response_for(self, value: ResponseFor) -> None:
        b = _Builder(self.add("ResponseFor"))
        b.add("OrganId", value.organ_id)
        b.add("Code", value.code)
        b.add("PromulgationDate", format_date(value.promulgation_date))
        b.add("DocumentId", value.document_id)

    def staff(self, value: StaffInfo | None) -> None:
        if value is None:
            return
        b = _Builder(self.add("StaffInfo"))
        b.optional("Department", value.department)
        b.optional("Staff", value.staff)
        b.optional("Mobile", value.mobile)
        b.optional("Email", value.email)


def _serialize(root: Any) -> bytes:
    tree = root.getroottree()
    validate(tree)
    data: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return data


def build_package(package: Package) -> bytes:
    """The package as UTF-8 edXML bytes, validated against ``schemas/edxml.xsd``."""
    root = etree.Element(q("edXML"), nsmap={"edXML": NS})
    envelope = _Builder(root).add("edXMLEnvelope")
    header = _Builder(envelope).add("edXMLHeader")
    m = _Builder(_Builder(header).add("MessageHeader"))
    m.organization("From", package.sender)
    for recipient in package.recipients:
        m.organization("To", recipient)
    code = _Builder(m.add("Code"))
    code.add("CodeNumber", package.code.number)
    code.add("CodeNotation", package.code.notation)
    info = _Builder(m.add("PromulgationInfo"))
    info.add("Place", package.place)
    info.add("PromulgationDate", format_date(package.promulgation_date))
    kind = _Builder(m.add("DocumentType"))
    kind.add("Type", package.document_type.type)
    kind.optional("TypeDetail", package.document_type.type_detail)
    kind.add("TypeName", package.document_type.type_name)
    m.add("Subject", package.subject)
    m.optional("Content", package.content)
    signer = _Builder(m.add("SignerInfo"))
    signer.optional("Competence", package.signer_info.competence)
    signer.optional("Position", package.signer_info.position)
    signer.add("FullName", package.signer_info.full_name)
    if package.due_date:
        m.add("DueDate", format_date(package.due_date))
    if package.to_places:
        places = _Builder(m.add("ToPlaces"))
        for place in package.to_places:
            places.add("Place", place)
    if package.priority or package.page_amount is not None or package.appendixes:
        other = _Builder(m.add("OtherInfo"))
        other.optional("Priority", package.priority)
        if package.page_amount is not None:
            other.add("PageAmount", str(package.page_amount))
        if package.appendixes:
            appendixes = _Builder(other.add("Appendixes"))
            for appendix in package.appendixes:
                appendixes.add("Appendix", appendix)
    for response in package.response_for:
        m.response_for(response)
    m.optional("SteeringType", package.steering_type)
    m.add("DocumentId", package.document_id)
    if package.trace or package.business:
        trace = _Builder(_Builder(header).add("TraceHeaderList"))
        for hop in package.trace:
            item = _Builder(trace.add("TraceHeader"))
            item.add("OrganId", hop.organ_id)
            item.add("Timestamp", format_datetime(hop.timestamp))
        if package.business:
            business = _Builder(trace.add("Bussiness"))
            business.add("BussinessDocType", str(int(package.business.doc_type)))
            business.optional("BussinessDocReason", package.business.reason)
            business.staff(package.business.staff)
    manifest = _Builder(_Builder(_Builder(envelope).add("edXMLBody")).add("edXMLManifest"))
    for attachment in package.attachments:
        entry = _Builder(manifest.add("Reference"))
        entry.add("ContentId", attachment.content_id)
        entry.add("ContentType", attachment.content_type)
        entry.optional("Description", attachment.description)
        entry.add("AttachmentName", attachment.name)
        entry.add("Digest", attachment.sha256).set("Algorithm", DIGEST_ALGORITHM)
    if package.attachments:
        encoded = _Builder(_Builder(root).add("AttachmentEncoded"))
        for attachment in package.attachments:
            item = _Builder(encoded.add("Attachment"))
            item.add("ContentId", attachment.content_id)
            item.add("AttachmentName", attachment.name)
            item.optional("Description", attachment.description)
            item.add("ContentType", attachment.content_type)
            item.add("ContentTransferEncoded", base64.b64encode(attachment.data).decode())
    return _serialize(root)


def build_status(status: StatusMessage) -> bytes:
    """The status message as UTF-8 XML bytes, validated against ``schemas/status.xsd``."""
    if status.code is StatusCode.REFUSED and not status.description.strip():
        raise InvalidDocument("status 02 (refused) needs a reason in its description")
    root = etree.Element(q("Status"), nsmap={"edXML": NS})
    b = _Builder(root)
    b.response_for(status.response_for)
    b.organization("From", status.sender)
    b.add("StatusCode", status.code.value)
    b.optional("Description", status.description)
    b.add("Timestamp", format_datetime(status.timestamp))
    b.staff(status.staff)
    return _serialize(root)


# --- Reading -------------------------------------------------------------------------------


def _tree(data: bytes | Any) -> Any:
    tree = safexml.parse(data) if isinstance(data, bytes) else data
    return tree.getroottree() if hasattr(tree, "getroottree") else tree


def _text(parent: Any, path: str) -> str:
    element = parent.find("/".join(q(p) for p in path.split("/")))
    return (element.text or "") if element is not None else ""


def _texts(parent: Any, path: str) -> tuple[str, ...]:
    return tuple(e.text or "" for e in parent.findall("/".join(q(p) for p in path.split("/"))))


def _organization(element: Any) -> Organization:
    return Organization(
        organ_id=_text(element, "OrganId"),
        organ_name=_text(element, "OrganName"),
        organization_in_charge=_text(element, "OrganizationInCharge"),
        organ_add=_text(element, "OrganAdd"),
        email=_text(element, "Email"),
        telephone=_text(element, "Telephone"),
        fax=_text(element, "Fax"),
        website=_text(element, "Website"),
    )


def _response_for(element: Any) -> ResponseFor:
    return ResponseFor(
        organ_id=_text(element, "OrganId"),
        code=_text(element, "Code"),
        promulgation_date=parse_date(_text(element, "PromulgationDate")),
        document_id=_text(element, "DocumentId"),
    )


def _staff(element: Any | None) -> StaffInfo | None:
    if element is None:
        return None
    return StaffInfo(
        department=_text(element, "Department"),
        staff=_text(element, "Staff"),
        mobile=_text(element, "Mobile"),
        email=_text(element, "Email"),
    )


def _require_kind(tree: Any, kind: DocumentKind) -> Any:
    found = validate(tree)
    if found is not kind:
        what = "an edXML package" if kind is DocumentKind.PACKAGE else "a status message"
        raise InvalidDocument(f"not {what}: the root element is {tree.getroot().tag}")
    return tree.getroot()


def parse_package(data: bytes | Any) -> Package:
    """Read a package from bytes (parsed with :mod:`safexml`) or a parsed tree.

    Validates it against the schema first. Attachment bytes are decoded but not compared
    with the manifest here: that is :func:`check_attachments`.

    For a signed package, use :func:`signer.xml_signing.verify_package`, which reads the
    package from what the signature covers, never from the bytes as received.
    """
    return read_package(_require_kind(_tree(data), DocumentKind.PACKAGE))


def read_package(tree: Any) -> Package:
    """The package in a tree :func:`validate` has found to be a valid package.

    Nothing is parsed or validated again: the caller vouches for the validation
    (:func:`parse_package` validates first).
    """
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    m = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}/{q('MessageHeader')}")
    trace = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}/{q('TraceHeaderList')}")
    business = trace.find(q("Bussiness")) if trace is not None else None
    page_amount = _text(m, "OtherInfo/PageAmount")
    return Package(
        sender=_organization(m.find(q("From"))),
        recipients=tuple(_organization(e) for e in m.findall(q("To"))),
        code=DocumentCode(_text(m, "Code/CodeNumber"), _text(m, "Code/CodeNotation")),
        place=_text(m, "PromulgationInfo/Place"),
        promulgation_date=parse_date(_text(m, "PromulgationInfo/PromulgationDate")),
        document_type=DocumentType(
            type=_text(m, "DocumentType/Type"),
            type_name=_text(m, "DocumentType/TypeName"),
            type_detail=_text(m, "DocumentType/TypeDetail"),
        ),
        subject=_text(m, "Subject"),
        signer_info=SignerInfo(
            full_name=_text(m, "SignerInfo/FullName"),
            position=_text(m, "SignerInfo/Position"),
            competence=_text(m, "SignerInfo/Competence"),
        ),
        content=_text(m, "Content"),
        due_date=parse_date(_text(m, "DueDate")) if _text(m, "DueDate") else None,
        to_places=_texts(m, "ToPlaces/Place"),
        priority=_text(m, "OtherInfo/Priority"),
        page_amount=int(page_amount) if page_amount else None,
        appendixes=_texts(m, "OtherInfo/Appendixes/Appendix"),
        response_for=tuple(_response_for(e) for e in m.findall(q("ResponseFor"))),
        steering_type=_text(m, "SteeringType"),
        trace=tuple(
            TraceHeader(_text(e, "OrganId"), parse_datetime(_text(e, "Timestamp")))
            for e in (trace.findall(q("TraceHeader")) if trace is not None else ())
        ),
        business=(
            Business(
                doc_type=BusinessDocType(int(_text(business, "BussinessDocType"))),
                reason=_text(business, "BussinessDocReason"),
                staff=_staff(business.find(q("StaffInfo"))),
            )
            if business is not None
            else None
        ),
        attachments=tuple(_attachment(e) for e in _attachment_elements(root)),
    )


def _attachment_elements(root: Any) -> Iterable[Any]:
    return root.findall(f"{q('AttachmentEncoded')}/{q('Attachment')}")


def _decode(element: Any) -> bytes | None:
    text = _text(element, "ContentTransferEncoded")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _attachment(element: Any) -> Attachment:
    data = _decode(element)
    if data is None:
        raise InvalidDocument(
            f"attachment {_text(element, 'AttachmentName')!r} is not valid base64"
        )
    return Attachment(
        content_id=_text(element, "ContentId"),
        name=_text(element, "AttachmentName"),
        content_type=_text(element, "ContentType"),
        data=data,
        description=_text(element, "Description"),
    )


def check_attachments(tree: Any) -> list[AttachmentMismatch]:
    """Compare every embedded attachment with the SHA-256 its manifest entry lists.

    Returns one :class:`AttachmentMismatch` per attachment that differs (or is missing);
    an empty list means every attachment is exactly what the manifest describes. Works on
    any parsed package, schema-valid or not, so that it can explain a broken one.
    """
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    attachments = {_text(e, "ContentId"): e for e in _attachment_elements(root)}
    manifest = root.findall(
        f"{q('edXMLEnvelope')}/{q('edXMLBody')}/{q('edXMLManifest')}/{q('Reference')}"
    )
    mismatches = []
    for entry in manifest:
        content_id = _text(entry, "ContentId")
        expected = _text(entry, "Digest").strip().lower()
        element = attachments.get(content_id)
        data = _decode(element) if element is not None else None
        actual = hashlib.sha256(data).hexdigest() if data is not None else None
        if actual != expected:
            mismatches.append(
                AttachmentMismatch(content_id, _text(entry, "AttachmentName"), expected, actual)
            )
    return mismatches


def parse_status(data: bytes | Any) -> StatusMessage:
    """Read a status message (validated against ``schemas/status.xsd`` first)."""
    return read_status(_require_kind(_tree(data), DocumentKind.STATUS))


def read_status(tree: Any) -> StatusMessage:
    """The status message in a tree :func:`validate` has found to be a valid one (nothing is
    parsed or validated again; :func:`parse_status` validates first)."""
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    return StatusMessage(
        response_for=_response_for(root.find(q("ResponseFor"))),
        sender=_organization(root.find(q("From"))),
        code=StatusCode(_text(root, "StatusCode")),
        timestamp=parse_datetime(_text(root, "Timestamp")),
        description=_text(root, "Description"),
        staff=_staff(root.find(q("StaffInfo"))),
    )
