"""The pyHanko side of visible signatures: a stamp style that draws a precomputed layout.

:mod:`signer.stamps` decides *what* goes *where* (pure geometry, checked before signing); this
module only draws it when pyHanko builds the signature field's appearance: PNG images at given
rectangles, and text lines shaped by HarfBuzz in an embedded, subsetted font.

The signing time is not baked into the layout. pyHanko hands every :class:`TextStampStyle` the
time it records in the signature (CMS ``signingTime`` and the ``/M`` entry) as the ``ts``
parameter; :meth:`KysoStampStyle.create_stamp` converts that to Vietnam time, so the time on the
page is always the signature's own.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import BaseStampStyle, TextStamp, TextStampStyle

from .errors import SigningFailed
from .pdf_input import Rect

VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")
# The format pyHanko uses for ``ts``: lossless to the second and parseable back.
PYHANKO_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
TIME_PARAM = "kyso_time"
# Private key in the appearance XObject: lets a later seal find the person's signature image.
MARKER = "/KysoStamp"


class InvalidStamp(SigningFailed):
    """The visible signature cannot be made as asked (bad page, box, image or text)."""


def vietnam_time(moment: dt.datetime) -> str:
    """``moment`` as ISO 8601 in Vietnam time, to the second: ``2026-11-25T14:07:09+07:00``.

    Naive datetimes are taken as UTC (what :func:`datetime.utcnow`-style code produces).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ImagePlacement:
    """A PNG drawn into ``rect`` (relative to the stamp's lower-left corner, in points)."""

    path: Path
    rect: Rect


@dataclass(frozen=True)
class TextLine:
    """One line: a ``%(name)s`` template, its left end and baseline relative to the stamp."""

    template: str
    x: float
    baseline: float


@dataclass(frozen=True)
class KysoStampStyle(TextStampStyle):
    """Draws :attr:`images`, then :attr:`lines` in black; no border, no background.

    ``kind`` and ``marked_image`` are written into the appearance as ``/KysoStamp`` so that a
    seal signed later can be placed relative to the person's signature image.
    """

    kind: str = ""
    images: tuple[ImagePlacement, ...] = ()
    lines: tuple[TextLine, ...] = ()
    font_file: str = ""
    font_size: int = 10
    marked_image: Rect | None = None
    border_width: int = 0
    timestamp_format: str = PYHANKO_TS_FORMAT

    def create_stamp(
        self,
        writer: BasePdfFileWriter,
        box: layout.BoxConstraints,
        text_params: dict[str, Any],
    ) -> KysoStamp:
        params = dict(text_params)
        if "ts" in params:
            signed_at = dt.datetime.strptime(params["ts"], PYHANKO_TS_FORMAT)
            params[TIME_PARAM] = vietnam_time(signed_at)
        return KysoStamp(writer, self, box, params)


class KysoStamp(TextStamp):
    """The rendered appearance of one :class:`KysoStampStyle`."""

    style: KysoStampStyle

    def __init__(
        self,
        writer: BasePdfFileWriter,
        style: KysoStampStyle,
        box: layout.BoxConstraints,
        params: dict[str, Any],
    ) -> None:
        super().__init__(writer=writer, style=style, text_params=params, box=box)
        self.params = params

    def _render_inner_content(self) -> list[bytes]:
        commands = [self._image(placement) for placement in self.style.images]
        if self.style.lines:
            commands.append(self._text())
        return commands

    def _image(self, placement: ImagePlacement) -> bytes:
        x1, y1, x2, y2 = placement.rect
        with Image.open(placement.path) as source:
            # RGBA keeps the transparency (pyHanko turns alpha into an /SMask).
            picture = source.convert("RGBA")
        image = PdfImage(picture, writer=self.writer, box=layout.BoxConstraints(x2 - x1, y2 - y1))
        drawn = image.render()
        self.import_resources(image.resources)
        return b"q 1 0 0 1 %g %g cm %s Q" % (x1, y1, drawn)

    def _font(self, font_file: str, size: int) -> GlyphAccumulator:
        # From the font's bytes, not pyHanko's GlyphAccumulatorFactory: the factory opens the
        # file and never closes it (a ResourceWarning per stamp).
        writer = self._ensure_writer
        obj_stream = writer.prepare_object_stream() if writer.stream_xrefs else None
        return GlyphAccumulator(
            writer=writer,
            font_handle=io.BytesIO(_font_bytes(font_file)),
            font_size=size,
            obj_stream=obj_stream,
        )

    def _text(self) -> bytes:
        style = self.style
        font = self._font(style.font_file, style.font_size)
        self.set_resource(ResourceType.FONT, generic.pdf_name("/F1"), font.as_resource())
        commands = [b"q 0 0 0 rg"]
        for line in style.lines:
            try:
                text = line.template % self.params
            except KeyError as exc:
                raise InvalidStamp(
                    f"stamp text parameter {exc.args[0]} missing: pass the stamp_params "
                    "returned by build_appearance"
                ) from None
            shaped = font.shape(text)
            commands.append(
                b"BT /F1 %d Tf 1 0 0 1 %g %g Tm %s ET"
                % (style.font_size, line.x, line.baseline, shaped.graphics_ops)
            )
        commands.append(b"Q")
        return b" ".join(commands)

    def as_form_xobject(self) -> generic.StreamObject:
        xobject = super().as_form_xobject()
        kind = generic.pdf_name("/" + self.style.kind)
        marker = generic.DictionaryObject({generic.pdf_name("/Kind"): kind})
        if self.style.marked_image is not None:
            marker[generic.pdf_name("/Image")] = generic.ArrayObject(
                generic.FloatObject(round(v, 3)) for v in self.style.marked_image
            )
        xobject[generic.pdf_name(MARKER)] = marker
        return xobject


@dataclass(frozen=True)
class Appearance:
    """Where and how a visible signature is drawn (see :mod:`signer.stamps`)."""

    page: int  # 0-based
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in PDF points
    style: BaseStampStyle


@functools.lru_cache(maxsize=4)
def _font_bytes(font_file: str) -> bytes:
    """The font file's bytes, read once per process (a Noto face is about 500 KiB)."""
    return Path(font_file).read_bytes()
