"""Checks on a PDF before anything else is done with it: readable, not encrypted, not empty."""

from __future__ import annotations

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from .errors import InvalidDocument

PDF_MAGIC = b"%PDF-"


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
