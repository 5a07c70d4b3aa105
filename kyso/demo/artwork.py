"""Demo artwork drawn by code: a blue handwritten-style signature and a red round seal.

Decree 30/2020 asks for transparent PNGs: the signature in blue, the seal in red at its real
size. Seals here are 36 mm across; the PNG records its resolution (300 dpi), so a stamp can
place it at real size.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 300
SEAL_DIAMETER_MM = 36
SEAL_RED = (206, 17, 38, 255)
SIGNATURE_BLUE = (20, 50, 170, 255)
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default()


def mm_to_px(mm: float) -> int:
    return round(mm / 25.4 * DPI)


def draw_seal(agency_name: str, path: Path) -> Path:
    """A round seal: two rings, the agency name around the top, a star in the centre."""
    size = mm_to_px(SEAL_DIAMETER_MM)
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    c = size / 2
    draw.ellipse((4, 4, size - 4, size - 4), outline=SEAL_RED, width=10)
    draw.ellipse((size * 0.2, size * 0.2, size * 0.8, size * 0.8), outline=SEAL_RED, width=5)
    _star(draw, c, c, size * 0.17)
    text = agency_name.upper()
    font = _font(int(size * 0.07))
    radius = size * 0.39
    span = min(300.0, 12.0 * len(text))  # degrees of arc the text occupies
    for i, char in enumerate(text):
        angle = -90 - span / 2 + span * (i + 0.5) / len(text)
        glyph = Image.new("RGBA", (int(size * 0.12), int(size * 0.12)), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text(
            (glyph.width / 2, glyph.height / 2), char, font=font, fill=SEAL_RED, anchor="mm"
        )
        glyph = glyph.rotate(-angle - 90, resample=Image.Resampling.BICUBIC)
        x = c + radius * math.cos(math.radians(angle)) - glyph.width / 2
        y = c + radius * math.sin(math.radians(angle)) - glyph.height / 2
        image.alpha_composite(glyph, (int(x), int(y)))
    return _save(image, path)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.4
        angle = math.radians(-90 + 36 * k)
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)


def draw_signature(person_name: str, path: Path) -> Path:
    """A flowing blue stroke, different for every name, with a flourish underneath."""
    width, height = mm_to_px(45), mm_to_px(20)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    seed = hashlib.sha256(person_name.encode()).digest()
    points = []
    steps = 240
    for i in range(steps):
        t = i / steps
        wobble = sum(
            math.sin(2 * math.pi * t * (2 + seed[k] % 5) + seed[k + 4] / 40) * (seed[k + 8] % 7 + 3)
            for k in range(3)
        )
        x = width * (0.08 + 0.84 * t)
        y = height * 0.45 + wobble * height / 90 + math.sin(t * 31 + seed[12]) * height * 0.12
        points.append((x, y))
    draw.line(points, fill=SIGNATURE_BLUE, width=7, joint="curve")
    flourish = [
        (width * (0.15 + 0.7 * t), height * (0.78 - 0.1 * math.sin(t * 3.1)))
        for t in (i / 60 for i in range(61))
    ]
    draw.line(flourish, fill=SIGNATURE_BLUE, width=5, joint="curve")
    return _save(image, path)


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", dpi=(DPI, DPI))
    return path
