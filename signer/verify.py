"""One entry point to validate any signed document: PDF, XML or a detached CMS signature."""

from __future__ import annotations

from pathlib import Path

from .errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from .pdf_input import looks_like_pdf
from .policy import ValidationPolicy
from .report import Report

MAX_XML_BYTES = 50 * 1024 * 1024
MAX_CMS_BYTES = 10 * 1024 * 1024


def detect_format(head: bytes) -> str:
    """``PDF``, ``XML`` or ``CMS`` from a file's first bytes."""
    if looks_like_pdf(head):
        return "PDF"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "XML"  # UTF-8 (with or without BOM) or UTF-16 with its BOM
    if stripped.startswith(b"0") or head.startswith(b"-----BEGIN PKCS7") or head[:1] == b"\x30":
        return "CMS"
    raise UnsupportedFormat("not a PDF, XML or CMS (.p7s) file")


def verify(path: Path, policy: ValidationPolicy, content: Path | None = None) -> Report:
    """Validate the signatures of ``path``; ``content`` is the data a detached .p7s signs."""
    try:
        with path.open("rb") as stream:
            head = stream.read(1024)
    except OSError as exc:
        raise InvalidDocument(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise InvalidDocument(f"{path.name} is empty (0 bytes)")
    kind = detect_format(head)
    if kind == "PDF":
        from .pdf_verify import verify_pdf

        return verify_pdf(path, policy)
    if kind == "XML":
        from .xml_signing import verify_xml

        return verify_xml(_read(path, MAX_XML_BYTES), policy, path.name)
    if content is None:
        raise InvalidDocument(f"{path.name} is a detached signature: give the signed file too")
    from .cades import verify_cms

    return verify_cms(_read(path, MAX_CMS_BYTES), _read(content, None), policy, content.name)


def _read(path: Path, limit: int | None) -> bytes:
    size = path.stat().st_size
    if limit is not None and size > limit:
        raise DocumentTooLarge(f"{path.name} is larger than {limit // 2**20} MiB")
    return path.read_bytes()
