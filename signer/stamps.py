"""Visible signatures as Decree 30/2020/NĐ-CP (Appendix I) wants them.

Four styles (:class:`StampKind`):

* ``PERSON`` – the competent person: the blue handwritten-signature PNG centred in the box
  (at its real size from the PNG's dpi, shrunk to fit), no text. The signature field is the
  image's own rectangle, so any later tool sees exactly where the signature is.
* ``SEAL`` – the agency: the red seal PNG at its real size (from its dpi), covering the left
  third of the person's signature image; without a box it is placed from the document's last
  person signature.
* ``ATTACHMENT`` – attachments in separate files: top right of the page, no image, the
  document's number and notation and the signing time, size 10, regular, black.
* ``COPY`` – electronic copies: like ``ATTACHMENT`` with the copy type ("SAO Y", …), the
  copying agency and the signing time.

The signing time is ISO 8601 in Vietnam time (``2026-11-25T14:07:09+07:00``) and is the time
pyHanko records in the signature (see :mod:`signer.stamp_style`). ``text_block`` adds the
common, non-decree "Ký bởi / Cơ quan / Thời gian ký" lines under a person's signature.

Text is set in the font of :mod:`signer.fonts` (Noto Serif), embedded and subsetted.
Everything is checked here, before signing, and reported as :class:`InvalidStamp`.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields

from .errors import InvalidDocument
from .fonts import StampFont, stamp_font
from .pdf_input import page_geometry, read_pdf, rect_of
from .stamp_style import (
    MARKER,
    TIME_PARAM,
    Appearance,
    ImagePlacement,
    InvalidStamp,
    KysoStampStyle,
    Rect,
    TextLine,
    vietnam_time,
)

__all__ = [
    "COPY_TYPES",
    "InvalidStamp",
    "StampKind",
    "StampRequest",
    "build_appearance",
    "build_appearance_for_file",
    "vietnam_time",
]

MM = 72 / 25.4
TEXT_SIZE = 10  # Decree 30: size 10, regular, black
LEADING = 12
MIN_TEXT_BLOCK_SIZE = 7  # below this the optional text block is unreadable in print
PADDING = 2.0
# From the right and top edges of the page: inside the decree's margins (right 15–20 mm, top
# 20–25 mm), so even three lines stay above the national header.
TOP_RIGHT_OFFSET = (15 * MM, 4 * MM)
SEAL_SIZE_MM = (20.0, 60.0)  # plausible real sizes; outside means the PNG's dpi is wrong
MAX_IMAGE_PIXELS = 25_000_000
COPY_TYPES = ("SAO Y", "SAO LỤC", "TRÍCH SAO")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TOLERANCE = 1.0  # points: fields are grown to whole points (see _snap)


class StampKind(StrEnum):
    PERSON = "person"
    SEAL = "seal"
    ATTACHMENT = "attachment"
    COPY = "copy"


@dataclass(frozen=True)
class StampRequest:
    """What to show and where (PDF points, origin at the page's lower-left corner).

    ``box``: required for ``PERSON`` (the area the signature image is centred in); for ``SEAL``
    the seal is centred on it, and ``None`` places it on the left third of the document's last
    person signature, on that signature's page (``page`` is then not used); for
    ``ATTACHMENT``/``COPY`` the text is set at its top left, ``None`` means the top right
    corner of the page.
    """

    kind: StampKind
    page: int = 0  # 0-based
    box: Rect | None = None
    signature_image: Path | None = None
    seal_image: Path | None = None
    document_code: str | None = None  # ATTACHMENT: "15/QĐ-UBND"
    copy_type: str | None = None  # COPY: one of COPY_TYPES
    agency_name: str | None = None  # COPY, and the text block
    signer_name: str | None = None  # the text block
    text_block: bool = False  # PERSON only: "Ký bởi / Cơ quan / Thời gian ký"
    font: Path | None = None  # the text's font file; None: Noto Serif (see signer.fonts)


@dataclass(frozen=True)
class _Page:
    crop: Rect


@dataclass(frozen=True)
class _Png:
    path: Path
    width: int
    height: int
    dpi: tuple[float, float] | None

    def real_size(self) -> tuple[float, float] | None:
        """Size in points at the PNG's resolution, if it records one."""
        if self.dpi is None:
            return None
        return self.width / self.dpi[0] * 72, self.height / self.dpi[1] * 72


def build_appearance(
    request: StampRequest,
    reader: PdfFileReader,
    signing_time: dt.datetime | None = None,
) -> tuple[Appearance, dict[str, str]]:
    """The appearance for ``PdfSignOptions.appearance`` and the ``stamp_params`` to go with it.

    ``reader`` is the document about to be signed (needed for the page size and, for a seal,
    the person's signature). ``signing_time`` only fills ``stamp_params``; the time drawn is
    the one pyHanko puts in the signature. Raises :class:`InvalidStamp` for a page out of range
    or rotated, a box outside the page, a missing or non-PNG image, missing or unprintable text.
    """
    if request.text_block and request.kind is not StampKind.PERSON:
        raise InvalidStamp("the Ký bởi / Cơ quan / Thời gian ký block goes with a person stamp")
    page = _page(reader, request.page)
    params = _params(request, signing_time or dt.datetime.now(dt.UTC))
    if request.box is not None:
        _check_box(request.box, page, request.page)
    page_index = request.page
    match request.kind:
        case StampKind.PERSON:
            box, style = _person(request, params)
        case StampKind.SEAL:
            page_index, box, style = _seal(request, reader)
        case StampKind.ATTACHMENT | StampKind.COPY:
            box, style = _text_only(request, page, params)
        case _:
            raise InvalidStamp(f"unknown stamp kind {request.kind!r}")
    if page_index != request.page:
        page = _page(reader, page_index)
    _check_box(box, page, page_index)
    return Appearance(page=page_index, box=box, style=style), params


def build_appearance_for_file(
    request: StampRequest, pdf: Path, signing_time: dt.datetime | None = None
) -> tuple[Appearance, dict[str, str]]:
    """:func:`build_appearance` for a PDF file on disk."""
    try:
        with pdf.open("rb") as stream:
            return build_appearance(request, read_pdf(stream, pdf.name), signing_time)
    except (InvalidDocument, OSError) as exc:
        raise InvalidStamp(f"cannot read the document: {exc}") from None


# -- inputs -------------------------------------------------------------------------------------


def _page(reader: PdfFileReader, index: int) -> _Page:
    try:
        geometry = page_geometry(reader, index)
    except InvalidDocument as exc:
        raise InvalidStamp(str(exc)) from None
    if geometry.rotate:
        # pyHanko draws appearances in unrotated page space: text would come out sideways.
        raise InvalidStamp(
            f"page {index + 1} is rotated by {geometry.rotate}°: visible stamps need /Rotate 0"
        )
    return _Page(geometry.box)


def _check_box(box: Rect, page: _Page, index: int) -> None:
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise InvalidStamp(f"stamp box {_fmt(box)} is empty: give x1 < x2 and y1 < y2")
    cx1, cy1, cx2, cy2 = page.crop
    t = _TOLERANCE
    if x1 < cx1 - t or y1 < cy1 - t or x2 > cx2 + t or y2 > cy2 + t:
        raise InvalidStamp(
            f"stamp box {_fmt(box)} is not inside page {index + 1} ({_fmt(page.crop)})"
        )


def _fmt(box: Rect) -> str:
    return "[" + " ".join(f"{v:.1f}" for v in box) + "]"


def _png(path: Path | None, what: str) -> _Png:
    if path is None:
        raise InvalidStamp(f"a {what} image (PNG) is required")
    try:
        with path.open("rb") as stream:
            if stream.read(len(PNG_MAGIC)) != PNG_MAGIC:
                raise InvalidStamp(f"{what} image {path} is not a PNG file")
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InvalidStamp(f"{what} image {path} is too large ({width}×{height} px)")
            image.load()  # decode now: a truncated file fails here, not halfway through signing
            dpi = image.info.get("dpi")
    except FileNotFoundError:
        raise InvalidStamp(f"{what} image {path} not found") from None
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidStamp(f"{what} image {path} cannot be read: {exc}") from None
    usable_dpi = None
    if dpi and float(dpi[0]) > 1 and float(dpi[1]) > 1:
        usable_dpi = float(dpi[0]), float(dpi[1])
    return _Png(path, width, height, usable_dpi)


def _text(value: str | None, what: str, font: StampFont) -> str:
    if value is None or not value.strip():
        raise InvalidStamp(f"{what} is required for this stamp")
    text = unicodedata.normalize("NFC", " ".join(value.split()))
    if any(unicodedata.category(c) == "Cc" for c in value if c not in "\t\n\r"):
        raise InvalidStamp(f"{what} contains control characters")
    missing = font.missing(text)
    if missing:
        raise InvalidStamp(f"{what} has characters the stamp font cannot print: {missing!r}")
    return text


def _params(request: StampRequest, signing_time: dt.datetime) -> dict[str, str]:
    """Text parameters: only those the requested style shows, each checked against the font."""
    font = stamp_font(request.font)
    params = {TIME_PARAM: vietnam_time(signing_time)}
    kind = request.kind
    if kind is StampKind.ATTACHMENT:
        params["kyso_code"] = _text(request.document_code, "the document code (số, ký hiệu)", font)
    if kind is StampKind.COPY:
        copy_type = _text(request.copy_type, "the copy type", font)
        if copy_type not in COPY_TYPES:
            raise InvalidStamp(f"copy type {copy_type!r} is not one of {', '.join(COPY_TYPES)}")
        params["kyso_copy_type"] = copy_type
    if kind is StampKind.COPY or request.text_block:
        params["kyso_agency"] = _text(request.agency_name, "the agency name", font)
    if request.text_block:
        params["kyso_signer"] = _text(request.signer_name, "the signer's name", font)
    return params


# -- layouts ------------------------------------------------------------------------------------


def _fit(png: _Png, area: Rect) -> Rect:
    """The image centred in ``area``: at its real size, shrunk to fit if need be.

    An image that records no dpi has no real size; it is scaled to fill the area.
    """
    ax1, ay1, ax2, ay2 = area
    real = png.real_size()
    width, height = real or (float(png.width), float(png.height))
    scale = min((ax2 - ax1) / width, (ay2 - ay1) / height)
    if real is not None:
        scale = min(1.0, scale)
    w, h = width * scale, height * scale
    x = ax1 + (ax2 - ax1 - w) / 2
    y = ay1 + (ay2 - ay1 - h) / 2
    return x, y, x + w, y + h


def _block_height(lines: int, size: float, font: StampFont) -> float:
    """Height of ``lines`` lines: the font's ascent (room for stacked diacritics such as Ễ),
    the leading between lines, its descent and a little padding below."""
    between = (lines - 1) * LEADING * size / TEXT_SIZE
    return font.ascent * size + between + font.descent * size + PADDING


def _lines(
    templates: tuple[str, ...], left: float, top: float, size: float, font: StampFont
) -> tuple[TextLine, ...]:
    first = top - font.ascent * size
    step = LEADING * size / TEXT_SIZE
    return tuple(TextLine(t, left, first - i * step) for i, t in enumerate(templates))


def _person(request: StampRequest, params: dict[str, str]) -> tuple[Rect, KysoStampStyle]:
    if request.box is None:
        raise InvalidStamp("a person stamp needs the box of the signature block")
    png = _png(request.signature_image, "signature")
    box = request.box
    if not request.text_block:
        image = _fit(png, box)
        field = _snap(image)
        relative = _relative(image, field)
        style = KysoStampStyle(
            kind=StampKind.PERSON,
            images=(ImagePlacement(png.path, relative),),
            marked_image=relative,
        )
        return field, style
    font = stamp_font(request.font)
    templates = (
        "Ký bởi: %(kyso_signer)s",
        "Cơ quan: %(kyso_agency)s",
        "Thời gian ký: %(kyso_time)s",
    )
    x1, y1, x2, y2 = box
    widest = max(font.width(t % params, TEXT_SIZE) for t in templates)
    size = min(TEXT_SIZE, int((x2 - x1 - 2 * PADDING) / widest * TEXT_SIZE))
    if size < MIN_TEXT_BLOCK_SIZE:
        raise InvalidStamp(f"stamp box {_fmt(box)} is too narrow for the text block")
    text_height = _block_height(len(templates), size, font)
    if y2 - y1 - text_height < 0.25 * (y2 - y1):
        raise InvalidStamp(f"stamp box {_fmt(box)} is too low for the image and the text block")
    field = _snap(box)
    image = _relative(_fit(png, (x1, y1 + text_height, x2, y2)), field)
    style = KysoStampStyle(
        kind=StampKind.PERSON,
        images=(ImagePlacement(png.path, image),),
        lines=_lines(templates, x1 + PADDING - field[0], y1 + text_height - field[1], size, font),
        font_file=str(font.path),
        font_size=size,
        marked_image=image,
    )
    return field, style


def _snap(rect: Rect) -> Rect:
    """``rect`` grown to whole points.

    Field rectangles are kept integral because a caller may round them (signer.pdf does), and
    the content is positioned relative to the field: this way rounding changes nothing.
    """
    x1, y1, x2, y2 = rect
    return float(math.floor(x1)), float(math.floor(y1)), float(math.ceil(x2)), float(math.ceil(y2))


def _relative(rect: Rect, origin: Rect) -> Rect:
    return rect[0] - origin[0], rect[1] - origin[1], rect[2] - origin[0], rect[3] - origin[1]


def _seal(request: StampRequest, reader: PdfFileReader) -> tuple[int, Rect, KysoStampStyle]:
    png = _png(request.seal_image, "seal")
    size = png.real_size()
    if size is None:
        raise InvalidStamp(
            f"seal image {png.path} records no resolution (dpi), so its real size is unknown"
        )
    width, height = size
    low, high = SEAL_SIZE_MM
    if not (low * MM <= max(width, height) <= high * MM):
        raise InvalidStamp(
            f"seal image {png.path} would be {max(width, height) / MM:.0f} mm across at its "
            f"{png.dpi[0] if png.dpi else 0:.0f} dpi; a real seal is {low:.0f}–{high:.0f} mm"
        )
    if request.box is not None:
        page = request.page
        bx1, by1, bx2, by2 = request.box
        cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
        x1 = cx - width / 2
    else:
        try:
            page, (sx1, sy1, sx2, sy2) = _last_person_image(reader)
        except (KeyError, TypeError, ValueError, PdfError) as exc:
            raise InvalidStamp(f"cannot read the signatures already on the page: {exc}") from None
        # The seal's right edge at one third of the signature: it covers the left third.
        x1 = sx1 + (sx2 - sx1) / 3 - width
        cy = (sy1 + sy2) / 2
    seal = (x1, cy - height / 2, x1 + width, cy + height / 2)
    field = _snap(seal)
    placement = ImagePlacement(png.path, _relative(seal, field))
    return page, field, KysoStampStyle(kind=StampKind.SEAL, images=(placement,))


def _last_person_image(reader: PdfFileReader) -> tuple[int, Rect]:
    """Page and signature image (page coordinates) of the document's last person signature.

    "Last" is the order of ``/AcroForm /Fields``, the order the fields were added in. Kyso's
    person stamps say where their image is (``/KysoStamp``); if there is none, the field
    rectangle of the last visible signature made by another tool stands for the image.
    """
    order = {
        (ref.idnum, ref.generation): position
        for position, (_, _, ref) in enumerate(fields.enumerate_sig_fields(reader))
    }
    ours: tuple[int, int, Rect] | None = None  # (field position, page, image)
    foreign: tuple[int, int, Rect] | None = None
    for index, page in enumerate(_pages(reader)):
        annots = page.get("/Annots")
        for annot_ref in annots.get_object() if annots is not None else ():
            if not isinstance(annot_ref, generic.IndirectObject):
                continue  # signature widgets are always indirect (they are fields)
            annot = annot_ref.get_object()
            position = _field_position(annot_ref, annot, order)
            if position is None or annot.get("/Subtype") != "/Widget":
                continue
            rect = rect_of(annot["/Rect"])
            if rect[2] - rect[0] < 1 or rect[3] - rect[1] < 1:
                continue  # an invisible signature
            marker = _marker(annot)
            if marker is None:
                if foreign is None or position > foreign[0]:
                    foreign = (position, index, rect)
            elif marker.get("/Kind") == "/" + StampKind.PERSON:
                image = marker.get("/Image")
                found = _offset(rect_of(image), rect) if image is not None else rect
                if ours is None or position > ours[0]:
                    ours = (position, index, found)
    result = ours or foreign
    if result is None:
        raise InvalidStamp(
            "the document has no visible person signature to put the seal on: "
            "sign as the person first or give the seal box"
        )
    return result[1], result[2]


def _pages(reader: PdfFileReader) -> Iterator[generic.DictionaryObject]:
    """The page dictionaries in order (a depth-first walk of the page tree, cycles refused)."""
    seen: set[int] = set()

    def walk(node: generic.DictionaryObject) -> Iterator[generic.DictionaryObject]:
        for kid_ref in node.get("/Kids", ()):
            if not isinstance(kid_ref, generic.IndirectObject) or kid_ref.idnum in seen:
                raise InvalidStamp("the page tree is malformed (direct or repeated kids)")
            seen.add(kid_ref.idnum)
            kid = kid_ref.get_object()
            if kid.get("/Type") == "/Pages":
                yield from walk(kid)
            else:
                yield kid

    yield from walk(reader.root["/Pages"])


def _field_position(
    ref: generic.IndirectObject,
    annot: generic.DictionaryObject,
    order: dict[tuple[int, int], int],
) -> int | None:
    """Position in /Fields of the signature field this widget belongs to (itself or parent)."""
    position = order.get((ref.idnum, ref.generation))
    parent = annot.raw_get("/Parent") if "/Parent" in annot else None
    if position is None and isinstance(parent, generic.IndirectObject):
        position = order.get((parent.idnum, parent.generation))
    return position


def _marker(annot: generic.DictionaryObject) -> generic.DictionaryObject | None:
    try:
        normal = annot["/AP"]["/N"].get_object()
        marker = normal.get(MARKER)
    except (KeyError, TypeError, AttributeError):
        return None
    return marker.get_object() if marker is not None else None


def _offset(rect: Rect, origin: Rect) -> Rect:
    return rect[0] + origin[0], rect[1] + origin[1], rect[2] + origin[0], rect[3] + origin[1]


def _text_only(
    request: StampRequest, page: _Page, params: dict[str, str]
) -> tuple[Rect, KysoStampStyle]:
    font = stamp_font(request.font)
    if request.kind is StampKind.ATTACHMENT:
        templates: tuple[str, ...] = ("%(kyso_code)s", f"%({TIME_PARAM})s")
    else:
        templates = ("%(kyso_copy_type)s", "%(kyso_agency)s", f"%({TIME_PARAM})s")
    width = 2 * PADDING + max(font.width(t % params, TEXT_SIZE) for t in templates)
    height = _block_height(len(templates), TEXT_SIZE, font)
    if request.box is None:
        right, top = page.crop[2] - TOP_RIGHT_OFFSET[0], page.crop[3] - TOP_RIGHT_OFFSET[1]
        box = (right - width, top - height, right, top)
    else:
        box = request.box
        if box[2] - box[0] < width - _TOLERANCE or box[3] - box[1] < height - _TOLERANCE:
            raise InvalidStamp(
                f"stamp box {_fmt(box)} is smaller than its text ({width:.0f}×{height:.0f} pt)"
            )
    field = _snap(box)
    style = KysoStampStyle(
        kind=request.kind,
        lines=_lines(templates, box[0] + PADDING - field[0], box[3] - field[1], TEXT_SIZE, font),
        font_file=str(font.path),
        font_size=TEXT_SIZE,
    )
    return field, style
