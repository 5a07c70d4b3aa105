"""Checks on a PDF before anything else is done with it: readable, not encrypted, not empty."""

from __future__ import annotations

from typing import BinaryIO

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from .errors import DocumentTooLarge, InvalidDocument

PDF_MAGIC = b"%PDF-"
MAX_PDF_BYTES = 512 * 1024 * 1024


def check_pdf_stream(stream: BinaryIO, name: str, max_bytes: int = MAX_PDF_BYTES) -> int:
    """Refuse empty, oversized and non-PDF input before any parsing; return the size.

    Leaves the stream at position 0.
    """
    size = stream.seek(0, 2)
    stream.seek(0)
    if size == 0:
        raise InvalidDocument(f"{name} is empty (0 bytes)")
    if size > max_bytes:
        raise DocumentTooLarge(f"{name} is larger than {max_bytes // 2**20} MiB")
    head = stream.read(1024)
    stream.seek(0)
    if not looks_like_pdf(head):
        raise InvalidDocument(f"{name} is not a PDF (no %PDF- header)")
    return size


def looks_like_pdf(head: bytes) -> bool:
    """True if the first kilobyte holds a PDF header (some files have junk before it)."""
    return PDF_MAGIC in head[:1024]


def open_pdf(reader: PdfFileReader, name: str) -> PdfFileReader:
    """Raise :class:`InvalidDocument` unless ``reader`` holds a usable, unencrypted PDF."""
    try:
        if reader.encrypted:
            raise InvalidDocument(f"{name} is encrypted: remove the password before signing")
        pages = int(reader.root["/Pages"]["/Count"])
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise InvalidDocument(f"{name} is not a readable PDF: {exc}") from None
    if pages < 1:
        raise InvalidDocument(f"{name} has no pages")
    return reader
