"""Visible signatures per Decree 30, checked as rendered: pdftoppm + Tesseract OCR + pixels.

Text extraction is not evidence (pdftotext reads perfect Vietnamese even from fonts that print
it wrong), so every stamp is rasterised at 200 dpi and read back with Tesseract's Vietnamese
model. Rendered pages are kept in test-artifacts/stamps/ for a human to look at.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from pyhanko.pdf_utils.reader import PdfFileReader

from certs.keystore import open_key
from kyso.samples import SampleDocument, decision_pdf
from signer.fonts import StampFontError, stamp_font
from signer.levels import Level
from signer.pdf import Appearance, PdfSignOptions, sign
from signer.stamp_style import KysoStampStyle
from signer.stamps import (
    InvalidStamp,
    StampKind,
    StampRequest,
    build_appearance,
    build_appearance_for_file,
    vietnam_time,
)

from .conftest import PASSPHRASE, KysoEnv, Server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "stamps"
DPI = 200
MM = 72 / 25.4
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")
PERSON_KEY = "person-nguyen-van-an"
SEAL_KEY = "seal-000.00.00.H41"
AGENCY = "UBND tỉnh Nghệ An"
SIGNER = "Nguyễn Văn An"
# Deliberately wrong: the stamp must show the signature's own time, not what the caller said.
WRONG_TIME = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)


# -- helpers --------------------------------------------------------------------------------------


@dataclass
class Signed:
    pdf: Path
    appearance: Appearance
    page: Image.Image  # page 1 at DPI


def stamp_sign(
    env: KysoEnv,
    source: Path,
    output: Path,
    key: str,
    request: StampRequest,
    level: Level = Level.B_B,
    tsa_url: str | None = None,
) -> Signed:
    appearance, params = build_appearance_for_file(request, source, WRONG_TIME)
    reference = f"p12:{env.pki / 'keys' / f'{key}.p12'}"
    with open_key(reference, PASSPHRASE.encode()) as signing_key:
        options = PdfSignOptions(
            level=level, appearance=appearance, stamp_params=params, tsa_url=tsa_url
        )
        sign(source, output, signing_key, options)
    return Signed(output, appearance, render(output))


def drawn(appearance: Appearance, index: int) -> tuple[float, float, float, float]:
    """Where the stamp draws its ``index``-th image, in page coordinates."""
    assert isinstance(appearance.style, KysoStampStyle)
    x1, y1, x2, y2 = appearance.style.images[index].rect
    left, bottom = appearance.box[:2]
    return x1 + left, y1 + bottom, x2 + left, y2 + bottom


def render(pdf: Path) -> Image.Image:
    png = subprocess.run(
        ["pdftoppm", "-r", str(DPI), "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf)],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    image = Image.open(io.BytesIO(png)).convert("RGB")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image.save(ARTIFACTS / f"{pdf.stem}.png")
    return image


def px(points: float) -> int:
    return round(points / 72 * DPI)


def crop(signed: Signed, name: str, trim_bottom: float = 0.0, margin: int = 10) -> Image.Image:
    """The stamp's field rectangle (PDF points, origin bottom left) cut out of the page image.

    ``trim_bottom`` (points) leaves out the descender room under the last line, where text of
    the document itself may reach and confuse Tesseract's line finder.
    """
    x1, y1, x2, y2 = signed.appearance.box
    height = signed.page.height
    region = (
        px(x1) - margin,
        height - px(y2) - margin,
        px(x2) + margin,
        height - px(y1 + trim_bottom),
    )
    image = signed.page.crop(region)
    image.save(ARTIFACTS / f"{name}-crop.png")
    return image


def ocr(image: Image.Image) -> list[str]:
    """Tesseract (Vietnamese) readings of the crop as rendered and enlarged twice.

    Two readings of the same pixels make the test robust to Tesseract's occasional slip
    (e.g. "/" read as "I"); an expectation still has to be read exactly in one of them.
    """
    readings = []
    enlarged = image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
    for variant in (image, enlarged):
        buffer = io.BytesIO()
        variant.save(buffer, "PNG")
        result = subprocess.run(
            ["tesseract", "-", "-", "-l", "vie", "--psm", "6"],
            input=buffer.getvalue(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        readings.append(unicodedata.normalize("NFC", result.stdout.decode()))
    return readings


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def distance_in(needle: str, line: str) -> int:
    """Fewest edits turning ``needle`` into some substring of ``line``."""
    return min(
        levenshtein(needle, line[start:end])
        for start in range(len(line) + 1)
        for end in range(start, min(len(line), start + len(needle) + 3) + 1)
    )


def assert_reads(readings: list[str], expected: str, max_edits: int = 2) -> None:
    """Some line reads ``expected`` within ``max_edits``, with every accented letter present."""
    lines = [line for reading in readings for line in reading.splitlines() if line.strip()]
    best = min(lines, key=lambda line: distance_in(expected, line))
    edits = distance_in(expected, best)
    assert edits <= max_edits, f"{expected!r} not read back: {readings}"
    accented = {c for c in expected if not c.isascii()}
    missing = {c for c in accented if c not in best}
    assert not missing, f"{expected!r} read as {best!r}: lost {''.join(sorted(missing))}"


def assert_reads_exactly(readings: list[str], expected: str) -> None:
    assert any(expected in reading.replace(" ", "") for reading in readings), (
        f"{expected!r} not read back: {readings}"
    )


def signature_times(pdf: Path) -> list[str]:
    """The signing time each signature records (CMS signingTime), as the stamp should show."""
    with pdf.open("rb") as stream:
        signatures = PdfFileReader(stream).embedded_signatures
        return [vietnam_time(s.self_reported_timestamp) for s in signatures]  # type: ignore[arg-type]


def pdfsig_valid(pdf: Path) -> int:
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, timeout=60).stdout
    return out.count("Signature Validation: Signature is Valid.")


def qpdf_check(pdf: Path) -> None:
    result = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def mask(image: Image.Image, colour: str) -> Image.Image:
    """1-bit mask of the seal's red or the signature's blue (demo artwork colours)."""
    r, g, b = image.split()

    def band(channel: Image.Image, test) -> Image.Image:  # type: ignore[no-untyped-def]
        return channel.point(lambda v: 255 if test(v) else 0).convert("1")

    if colour == "red":
        parts = [band(r, lambda v: v > 150), band(g, lambda v: v < 110), band(b, lambda v: v < 120)]
    else:
        parts = [band(r, lambda v: v < 120), band(g, lambda v: v < 140), band(b, lambda v: v > 120)]
    result = ImageChops.logical_and(parts[0], parts[1])
    return ImageChops.logical_and(result, parts[2])


def count(bits: Image.Image, box: tuple[int, int, int, int] | None = None) -> int:
    region = bits.crop(box) if box else bits
    return region.convert("L").histogram()[255]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stamps")


@pytest.fixture(scope="module")
def sample(workdir: Path) -> SampleDocument:
    return decision_pdf(workdir / "decision.pdf")


@pytest.fixture(scope="module")
def attachment(kyso_env: KysoEnv, sample: SampleDocument, workdir: Path) -> Signed:
    request = StampRequest(StampKind.ATTACHMENT, document_code=sample.code)
    return stamp_sign(kyso_env, sample.path, workdir / "attachment.pdf", SEAL_KEY, request)


@pytest.fixture(scope="module")
def person_then_seal(
    kyso_env: KysoEnv, sample: SampleDocument, workdir: Path
) -> tuple[Signed, Signed]:
    images = kyso_env.pki / "images"
    person = stamp_sign(
        kyso_env,
        sample.path,
        workdir / "person.pdf",
        PERSON_KEY,
        StampRequest(
            StampKind.PERSON,
            box=sample.signature_box,
            signature_image=images / f"{PERSON_KEY}.png",
        ),
    )
    seal = stamp_sign(
        kyso_env,
        person.pdf,
        workdir / "person-and-seal.pdf",
        SEAL_KEY,
        StampRequest(StampKind.SEAL, seal_image=images / f"{SEAL_KEY}.png"),
    )
    return person, seal


# -- the decree's styles --------------------------------------------------------------------------


def test_attachment_stamp_reads_back_code_and_signing_time(attachment: Signed) -> None:
    readings = ocr(crop(attachment, "attachment", trim_bottom=4))
    assert_reads_exactly(readings, "15/QĐ-UBND")
    (signed_at,) = signature_times(attachment.pdf)
    assert ISO_TIME.fullmatch(signed_at)
    assert_reads_exactly(readings, signed_at)  # the signature's time, not WRONG_TIME


def test_attachment_stamp_is_top_right_of_the_first_page(attachment: Signed) -> None:
    x1, y1, x2, y2 = attachment.appearance.box
    width, height = 595.28, 841.89  # A4
    assert attachment.appearance.page == 0
    assert x2 == pytest.approx(width - 15 * MM, abs=0.5)
    assert y2 == pytest.approx(height - 4 * MM, abs=0.5)
    assert x1 > width / 2 and y1 > height - 25 * MM  # inside the top margin's right half


def _font_sizes(path: Path) -> list[float]:
    """Every Tf size in the signature widget's appearance, its form XObjects included."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    sizes: list[float] = []

    def walk(stream) -> None:  # type: ignore[no-untyped-def]
        sizes.extend(float(v) for v in re.findall(rb"/\S+\s+([\d.]+)\s+Tf\b", stream.data))
        xobjects = stream.get("/Resources", {}).get("/XObject", {})
        for name in xobjects:
            walk(xobjects[name])

    with path.open("rb") as file:
        reader = PdfFileReader(file)
        fields = [f.get_object() for f in reader.root["/AcroForm"]["/Fields"]]
        [widget] = [f for f in fields if f.get("/FT") == "/Sig"]
        walk(widget["/AP"]["/N"])
    return sizes


def test_attachment_stamp_text_is_size_10(attachment: Signed) -> None:
    sizes = _font_sizes(attachment.pdf)
    assert sizes and set(sizes) == {10.0}, sizes


def test_stamped_output_is_valid_and_embeds_noto_serif(attachment: Signed) -> None:
    assert pdfsig_valid(attachment.pdf) == 1
    qpdf_check(attachment.pdf)
    fonts = subprocess.run(
        ["pdffonts", str(attachment.pdf)], capture_output=True, text=True, check=True
    ).stdout
    stamp_fonts = [line for line in fonts.splitlines() if "Identity-H" in line]
    assert len(stamp_fonts) == 1, fonts
    name, *_, emb, sub, uni, _obj, _gen = stamp_fonts[0].split()
    assert re.fullmatch(r"[A-Z]{6}\+NotoSerif-Regular-Identity-H", name), fonts
    assert (emb, sub, uni) == ("yes", "yes", "yes"), fonts  # embedded, subsetted, ToUnicode
    assert "Liberation" not in fonts and "DejaVu" not in fonts


def test_copy_stamp_with_timestamp_reads_back_type_agency_and_time(
    kyso_env: KysoEnv, server: Server, sample: SampleDocument, workdir: Path
) -> None:
    request = StampRequest(StampKind.COPY, copy_type="SAO Y", agency_name=AGENCY)
    signed = stamp_sign(
        kyso_env,
        sample.path,
        workdir / "copy.pdf",
        SEAL_KEY,
        request,
        level=Level.B_T,
        tsa_url=server.url + "/pki/tsa",
    )
    readings = ocr(crop(signed, "copy", trim_bottom=4))
    assert_reads_exactly(readings, "SAOY")
    assert_reads(readings, AGENCY)
    assert_reads_exactly(readings, signature_times(signed.pdf)[0])
    assert pdfsig_valid(signed.pdf) == 1
    qpdf_check(signed.pdf)


def test_text_block_reads_back_signer_and_agency_with_diacritics(
    kyso_env: KysoEnv, sample: SampleDocument, workdir: Path
) -> None:
    request = StampRequest(
        StampKind.PERSON,
        box=sample.signature_box,
        signature_image=kyso_env.pki / "images" / f"{PERSON_KEY}.png",
        signer_name=SIGNER,
        agency_name=AGENCY,
        text_block=True,
    )
    signed = stamp_sign(kyso_env, sample.path, workdir / "text-block.pdf", PERSON_KEY, request)
    readings = ocr(crop(signed, "text-block", margin=0))
    assert_reads(readings, f"Ký bởi: {SIGNER}")
    assert_reads(readings, f"Cơ quan: {AGENCY}")
    assert_reads_exactly(readings, signature_times(signed.pdf)[0])
    assert pdfsig_valid(signed.pdf) == 1


def test_person_then_seal_both_valid(person_then_seal: tuple[Signed, Signed]) -> None:
    person, seal = person_then_seal
    assert pdfsig_valid(person.pdf) == 1
    assert pdfsig_valid(seal.pdf) == 2
    qpdf_check(seal.pdf)


def test_signature_image_is_centred_in_the_signature_box(
    person_then_seal: tuple[Signed, Signed], sample: SampleDocument
) -> None:
    person, _ = person_then_seal
    bx1, by1, bx2, by2 = sample.signature_box
    x1, y1, x2, y2 = drawn(person.appearance, 0)
    assert bx1 <= x1 < x2 <= bx2 and by1 <= y1 < y2 <= by2
    assert (x1 + x2) / 2 == pytest.approx((bx1 + bx2) / 2, abs=0.01)
    assert (y1 + y2) / 2 == pytest.approx((by1 + by2) / 2, abs=0.01)
    assert x2 - x1 == pytest.approx(45 * MM, abs=0.2)  # real size: 45 mm = 531 px at 300 dpi
    fx1, fy1, fx2, fy2 = person.appearance.box  # the field: the image, grown to whole points
    assert fx1 <= x1 < fx1 + 1 and fy1 <= y1 < fy1 + 1 and x2 <= fx2 < x2 + 1 and y2 <= fy2 < y2 + 1
    blue = mask(person.page, "blue").getbbox()
    assert blue is not None
    centre = (blue[0] + blue[2]) / 2 / DPI * 72  # the drawn strokes, in points
    assert centre == pytest.approx((bx1 + bx2) / 2, abs=2 * MM)
    assert count(mask(person.page, "red")) == 0  # no seal yet, no text with the image


def test_seal_is_real_size_and_covers_the_left_third_of_the_signature(
    person_then_seal: tuple[Signed, Signed],
) -> None:
    _, seal = person_then_seal
    red, blue = mask(seal.page, "red"), mask(seal.page, "blue")
    red_box, blue_box = red.getbbox(), blue.getbbox()
    assert red_box is not None and blue_box is not None
    diameter_mm = (red_box[2] - red_box[0]) / DPI * 25.4
    assert 34.5 <= diameter_mm <= 36.5, diameter_mm  # a 36 mm seal, drawn 4 px inside its PNG

    bx1, by1, bx2, by2 = blue_box
    third = bx1 + (bx2 - bx1) / 3
    left_third = (bx1, by1, round(third), by2)
    right = (round(third + 0.05 * (bx2 - bx1)), by1, bx2, by2)
    in_left, in_right = count(red, left_third), count(red, right)
    assert in_left > 500, "the seal does not overlap the signature's left third"
    assert in_right < 0.01 * count(red, blue_box), "the seal covers the right two thirds"
    # Its right edge is at the third, and most of it lies left of the signature.
    assert abs(red_box[2] - third) < 0.05 * (bx2 - bx1)
    assert (red_box[0] + red_box[2]) / 2 < bx1


def test_seal_follows_the_person_signature_to_its_page(kyso_env: KysoEnv, workdir: Path) -> None:
    sample = decision_pdf(workdir / "two-pages.pdf", pages=2)  # signature block on page 2
    images = kyso_env.pki / "images"
    person = StampRequest(
        StampKind.PERSON,
        page=1,
        box=sample.signature_box,
        signature_image=images / f"{PERSON_KEY}.png",
    )
    appearance, params = build_appearance_for_file(person, sample.path)
    signed = workdir / "two-pages-person.pdf"
    with open_key(f"p12:{kyso_env.pki / 'keys' / f'{PERSON_KEY}.p12'}", PASSPHRASE.encode()) as key:
        sign(sample.path, signed, key, PdfSignOptions(appearance=appearance, stamp_params=params))
    seal, _ = build_appearance_for_file(
        StampRequest(StampKind.SEAL, seal_image=images / f"{SEAL_KEY}.png"), signed
    )
    assert seal.page == 1
    image = drawn(appearance, 0)
    drawn_seal = drawn(seal, 0)
    assert drawn_seal[2] == pytest.approx(image[0] + (image[2] - image[0]) / 3, abs=0.01)
    assert drawn_seal[2] - drawn_seal[0] == pytest.approx(36 * MM, abs=0.1)  # real size


# -- units and bad input --------------------------------------------------------------------------


def test_vietnam_time_is_iso_8601_with_the_offset() -> None:
    moment = dt.datetime(2026, 11, 25, 7, 7, 9, 999_000, tzinfo=dt.UTC)
    assert vietnam_time(moment) == "2026-11-25T14:07:09+07:00"
    assert vietnam_time(moment.replace(tzinfo=None)) == "2026-11-25T14:07:09+07:00"
    bangkok_noon = dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert vietnam_time(bangkok_noon) == "2026-11-25T12:00:00+07:00"


@pytest.mark.parametrize(
    ("font", "problem"),
    [
        # ơ, ư, ả… missing: those letters vanish from the page; 2048 units/em: wrong advances.
        ("/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf", "no glyph for .*ơ"),
        ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "2048 units per em"),
    ],
)
def test_fonts_that_print_vietnamese_wrong_are_refused(font: str, problem: str) -> None:
    if not Path(font).exists():
        pytest.skip(f"{font} not installed")
    with pytest.raises(StampFontError, match=problem):
        stamp_font(Path(font))
    assert stamp_font().postscript_name == "NotoSerif-Regular"


@pytest.mark.system
def test_kyso_stamp_font_is_the_commands_setting_not_read_by_the_signer(
    kyso_env: KysoEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``KYSO_STAMP_FONT`` is read with the other settings (kyso/config.py) and handed to the
    stamp; signer.fonts reads no environment."""
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
    if not Path(dejavu).exists():
        pytest.skip(f"{dejavu} not installed")
    monkeypatch.setenv("KYSO_STAMP_FONT", dejavu)
    assert stamp_font().postscript_name == "NotoSerif-Regular"
    source = decision_pdf(tmp_path / "qd.pdf").path
    output = tmp_path / "signed.pdf"
    result = kyso_env.kyso(
        "sign", "pdf", str(source), "-o", str(output),
        "--key", f"p12:{kyso_env.pki / 'keys' / f'{SEAL_KEY}.p12'}",
        "--visible", "--style", "attachment", "--document-code", "15/QĐ-UBND",
        env={**kyso_env.env, "KYSO_STAMP_FONT": dejavu}, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "2048 units per em" in result.stderr and not output.exists()


@pytest.fixture(scope="module")
def not_png(workdir: Path) -> Path:
    path = workdir / "signature.jpg"
    Image.new("RGB", (300, 100), "blue").save(path, "JPEG")
    return path


@pytest.fixture(scope="module")
def no_dpi_seal(workdir: Path) -> Path:
    path = workdir / "seal-no-dpi.png"
    Image.new("RGBA", (400, 400), (206, 17, 38, 255)).save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def rotated(sample: SampleDocument, workdir: Path) -> Path:
    path = workdir / "rotated.pdf"
    subprocess.run(["qpdf", "--rotate=+90:1", str(sample.path), str(path)], check=True)
    return path


BAD_REQUESTS = {
    "page out of range": (dict(kind=StampKind.ATTACHMENT, page=1, document_code="1/QĐ"), "page 2"),
    "box outside the page": (
        dict(kind=StampKind.ATTACHMENT, box=(500, 800, 700, 900), document_code="1/QĐ"),
        "not inside page 1",
    ),
    "empty box": (dict(kind=StampKind.PERSON, box=(300, 300, 300, 400)), "empty"),
    "person without box": (dict(kind=StampKind.PERSON), "needs the box"),
    "person without image": (dict(kind=StampKind.PERSON, box=(330, 350, 510, 430)), "required"),
    "missing image": (
        dict(kind=StampKind.PERSON, box=(330, 350, 510, 430), signature_image="missing.png"),
        "not found",
    ),
    "not a png": (
        dict(kind=StampKind.PERSON, box=(330, 350, 510, 430), signature_image="JPEG"),
        "not a PNG",
    ),
    "seal without dpi": (
        dict(kind=StampKind.SEAL, box=(100, 100, 200, 200), seal_image="NODPI"),
        "dpi",
    ),
    "seal without person": (dict(kind=StampKind.SEAL, seal_image="SEAL"), "no visible person"),
    "attachment without code": (dict(kind=StampKind.ATTACHMENT), "document code"),
    "unknown copy type": (
        dict(kind=StampKind.COPY, copy_type="BẢN SAO", agency_name=AGENCY),
        "not one of",
    ),
    "unprintable agency": (
        dict(kind=StampKind.COPY, copy_type="SAO Y", agency_name="UBND 漢字"),
        "cannot print",
    ),
    "text block on a seal": (
        dict(kind=StampKind.SEAL, seal_image="SEAL", text_block=True),
        "person stamp",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=str)
def test_bad_requests_are_refused_with_a_clear_message(
    case: str, kyso_env: KysoEnv, sample: SampleDocument, not_png: Path, no_dpi_seal: Path
) -> None:
    fields, message = BAD_REQUESTS[case]
    images = {
        "JPEG": not_png,
        "NODPI": no_dpi_seal,
        "SEAL": kyso_env.pki / "images" / f"{SEAL_KEY}.png",
    }
    for key in ("signature_image", "seal_image"):
        if key in fields:
            name = str(fields[key])
            fields = {**fields, key: images.get(name, sample.path.parent / name)}
    with pytest.raises(InvalidStamp, match=message):
        build_appearance_for_file(StampRequest(**fields), sample.path)  # type: ignore[arg-type]


def test_rotated_pages_are_refused(rotated: Path) -> None:
    request = StampRequest(StampKind.ATTACHMENT, document_code="15/QĐ-UBND")
    with pytest.raises(InvalidStamp, match="rotated by 90"):
        build_appearance_for_file(request, rotated)


def test_build_appearance_takes_a_reader(sample: SampleDocument) -> None:
    request = StampRequest(StampKind.COPY, copy_type="SAO LỤC", agency_name=AGENCY)
    with sample.path.open("rb") as stream:
        appearance, params = build_appearance(request, PdfFileReader(stream), WRONG_TIME)
    assert params == {
        "kyso_time": "2001-01-01T07:00:00+07:00",
        "kyso_copy_type": "SAO LỤC",
        "kyso_agency": AGENCY,
    }
    assert appearance.page == 0
