"""The font of visible signatures: a serif with full Vietnamese coverage that pyHanko draws right.

Decree 30/2020 asks for Times New Roman, which cannot be shipped. What pyHanko 0.38's OpenType
glyph accumulator can draw correctly was established by rendering and OCR, not by text
extraction (which looks perfect for every font):

* Noto Serif (Debian ``fonts-noto-core``) renders right;
* Liberation Serif has no glyphs for ơ, ư, ả, … so those letters vanish from the page;
* DejaVu Serif has 2048 units per em, and pyHanko writes glyph widths in font units into ``TJ``
  and ``/W`` where PDF expects thousandths of an em, so every advance is wrong.

:func:`stamp_font` therefore accepts a font only if it covers every Vietnamese letter and has
1000 units per em; both properties are checked on the font file, so a wrong font fails loudly
instead of producing a stamp that extracts well and prints badly.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import uharfbuzz as hb
from fontTools.ttLib import TTFont, TTLibError

from .errors import SigningFailed

DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf")
# pyHanko 0.38 puts glyph widths into the PDF unscaled (see the module docstring).
REQUIRED_UNITS_PER_EM = 1000

_VOWELS = "aăâeêioôơuưy"
_TONES = "\u0300\u0309\u0303\u0301\u0323"  # huyền, hỏi, ngã, sắc, nặng
VIETNAMESE_LETTERS = frozenset(
    unicodedata.normalize("NFC", letter)
    for base in _VOWELS + _VOWELS.upper()
    for letter in (base, *(base + tone for tone in _TONES))
) | frozenset("đĐ")


class StampFontError(SigningFailed):
    """The configured stamp font is missing or cannot render Vietnamese correctly."""


@dataclass(frozen=True)
class StampFont:
    """A validated font file plus what is needed to measure text the way pyHanko shapes it."""

    path: Path
    postscript_name: str
    ascent: float  # em units (1.0 = font size)
    descent: float  # em units, positive below the baseline
    codepoints: frozenset[int] = field(repr=False)

    def missing(self, text: str) -> str:
        """The characters of ``text`` the font has no glyph for (whitespace ignored)."""
        return "".join(
            sorted({c for c in text if ord(c) not in self.codepoints and not c.isspace()})
        )

    def width(self, text: str, size: float) -> float:
        """Advance width of ``text`` in points, shaped by HarfBuzz as pyHanko will shape it."""
        buffer = hb.Buffer()
        buffer.add_str(text)
        buffer.guess_segment_properties()
        hb.shape(_hb_font(self.path), buffer)
        advance = sum(position.x_advance for position in buffer.glyph_positions or ())
        return advance / REQUIRED_UNITS_PER_EM * size


@functools.lru_cache(maxsize=4)
def _hb_font(path: Path) -> hb.Font:
    return hb.Font(hb.Face(path.read_bytes()))


def stamp_font(path: Path | None = None) -> StampFont:
    """The stamp font: ``path``, else Noto Serif Regular (Kyso's shell gives the font named by
    ``KYSO_STAMP_FONT``; this module reads no environment).

    Raises :class:`StampFontError` if the file is missing, unreadable, lacks a Vietnamese
    letter or does not have 1000 units per em.
    """
    return _load((path or DEFAULT_FONT).resolve())


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> StampFont:
    if not path.is_file():
        raise StampFontError(
            f"stamp font {path} not found: install fonts-noto-core or set KYSO_STAMP_FONT"
        )
    try:
        font = TTFont(path, lazy=True)
        units = int(font["head"].unitsPerEm)
        codepoints = frozenset(font.getBestCmap())
        hhea = font["hhea"]
        name = font["name"].getDebugName(6) or path.stem
    except (TTLibError, KeyError, OSError) as exc:
        raise StampFontError(f"stamp font {path} is not a usable TrueType font: {exc}") from None
    problems = []
    missing = sorted(c for c in VIETNAMESE_LETTERS if ord(c) not in codepoints)
    if missing:
        problems.append(f"no glyph for {''.join(missing[:12])} (those letters would vanish)")
    if units != REQUIRED_UNITS_PER_EM:
        problems.append(
            f"{units} units per em (pyHanko 0.38 draws wrong advances unless it is "
            f"{REQUIRED_UNITS_PER_EM})"
        )
    if problems:
        raise StampFontError(f"stamp font {path}: {'; '.join(problems)}; use Noto Serif")
    return StampFont(
        path=path,
        postscript_name=name,
        ascent=hhea.ascent / units,
        descent=-hhea.descent / units,
        codepoints=codepoints,
    )
