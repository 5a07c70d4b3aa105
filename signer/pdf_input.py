"""Checks on a PDF before anything else is done with it: readable, not encrypted, not empty.

Also the limits every PDF read for verification is held to (see :data:`VERIFY_DECODE_LIMITS`
and the cross-reference row check of :mod:`certs.patches`, which the entry points install): a
hostile file must cost bounded time and memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.misc import PdfDecodeLimitError, PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from certs.patches import MAX_PDF_OBJECTS

from .errors import DocumentTooLarge, InvalidDocument

PDF_MAGIC = b"%PDF-"
MAX_PDF_BYTES = 512 * 1024 * 1024
MIB = 1024 * 1024

# What pyHanko raises on malformed input besides PdfError: it checks object types with
# ``assert`` (AssertionError), calls stream methods on whatever a damaged reference resolves
# to (AttributeError), indexes dictionaries and arrays directly (KeyError, IndexError),
# converts numbers and text (ValueError, TypeError; ArithmeticError: OverflowError for a
# 20-digit offset, decimal.InvalidOperation for a real written "1..2"), inflates with zlib
# (zlib.error), seeks before the start of a file when it corrects a damaged startxref
# (OSError from a file, ValueError from memory), refuses unsupported filters and predictors
# (NotImplementedError) and parses nested arrays, dictionaries and reference chains
# recursively (RecursionError: objects nested 100 000 deep, an object that refers to itself).
# Found by tests/test_fuzz_verify.py and tests/test_pdf_bombs.py. A damaged document gets an
# input error or a verdict, never a crash.
MALFORMED_PDF_ERRORS: tuple[type[Exception], ...] = (
    PdfError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    OSError,
    NotImplementedError,
    RecursionError,
    zlib.error,
)

# Verification inflates only what it needs: cross-reference and object streams, the DSS
# answers, and XMP metadata that a later revision changed (never page content: revisions are
# compared on their encoded bytes). pyHanko's defaults for untrusted input let one stream
# inflate to 256 MiB; a verifier needs far less, and a deflate bomb (1 GiB of zeros in a
# 1 MiB stream) must stop early: 64 MiB per stream, 128 MiB in all for a small file.
VERIFY_DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=64 * MIB),
    document_budget=DocumentDecodeBudget(base_allowance=128 * MIB, max_ratio=20),
)


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


def unreadable_reason(exc: BaseException) -> str:
    """What to tell a user about one of :data:`MALFORMED_PDF_ERRORS`."""
    if isinstance(exc, RecursionError):
        return "objects are nested too deeply or refer to themselves"
    if isinstance(exc, PdfDecodeLimitError):
        return f"a compressed stream inflates beyond the limit ({exc})"
    return str(exc) or f"malformed structure ({type(exc).__name__})"


def read_pdf(
    stream: BinaryIO, name: str, limits: DecodeLimits = VERIFY_DECODE_LIMITS
) -> PdfFileReader:
    """A lenient reader over ``stream`` with bounded decoding, checked by :func:`open_pdf`.

    Raises :class:`InvalidDocument` for anything that is not a readable, unencrypted PDF.
    """
    try:
        reader = PdfFileReader(stream, strict=False, decode_limits=limits)
    except MALFORMED_PDF_ERRORS as exc:
        raise InvalidDocument(f"{name} is not a readable PDF: {unreadable_reason(exc)}") from None
    # Read leniently, a cross-reference section's /Size is not used, so nonsense there costs
    # nothing; it is still nonsense, and a sign of a crafted file: refuse it by name.
    for revision in range(reader.xrefs.total_revisions):
        size = reader.xrefs.get_xref_container_info(revision).size
        if not 0 < size <= MAX_PDF_OBJECTS:
            raise InvalidDocument(
                f"{name} is not a readable PDF: revision {revision + 1} declares /Size {size} "
                f"(a PDF holds 1 to {MAX_PDF_OBJECTS} objects)"
            )
    return open_pdf(reader, name)


def open_pdf(reader: PdfFileReader, name: str) -> PdfFileReader:
    """Raise :class:`InvalidDocument` unless ``reader`` holds a usable, unencrypted PDF."""
    try:
        if reader.encrypted:
            raise InvalidDocument(f"{name} is encrypted: remove the password before signing")
        pages = int(reader.root["/Pages"]["/Count"])
    except MALFORMED_PDF_ERRORS as exc:
        raise InvalidDocument(f"{name} is not a readable PDF: {unreadable_reason(exc)}") from None
    if pages < 1:
        raise InvalidDocument(f"{name} has no pages")
    return reader


Rect = tuple[float, float, float, float]  # x1, y1, x2, y2, normalised (x1 < x2, y1 < y2)


@dataclass(frozen=True)
class PageGeometry:
    """What a page shows: its crop box clipped to its media box, and its rotation."""

    box: Rect
    rotate: int


def rect_of(value: object) -> Rect:
    """A PDF rectangle (four numbers, any corner order) as (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in value)  # type: ignore[attr-defined]
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _intersect(a: Rect, b: Rect) -> Rect:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def page_count(reader: PdfFileReader) -> int:
    try:
        return int(reader.root["/Pages"]["/Count"])
    except MALFORMED_PDF_ERRORS as exc:
        raise InvalidDocument(f"cannot read the page tree: {exc}") from None


def page_geometry(reader: PdfFileReader, index: int) -> PageGeometry:
    """The visible area and rotation of page ``index`` (0-based), inherited attributes included.

    Raises :class:`InvalidDocument` if the page does not exist or has no usable /MediaBox.
    """
    count = page_count(reader)
    if not 0 <= index < count:
        raise InvalidDocument(f"page {index + 1} does not exist: the document has {count} page(s)")
    try:
        page = reader.find_page_for_modification(index)[0].get_object()
        media = rect_of(_inherited(page, "/MediaBox"))
        crop = _inherited(page, "/CropBox")
        box = media if crop is None else _intersect(media, rect_of(crop))
        rotate = _inherited(page, "/Rotate")
    except MALFORMED_PDF_ERRORS as exc:
        raise InvalidDocument(f"page {index + 1} has no usable /MediaBox: {exc}") from None
    return PageGeometry(box, int(rotate) % 360 if isinstance(rotate, int) else 0)


def _inherited(page: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    node: generic.DictionaryObject | None = page
    for _ in range(64):  # page trees are shallow; this bounds a cyclic /Parent chain
        if node is None:
            return None
        if key in node:
            return node[key]
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return None
