"""Sample official documents (a Decree 30 style decision) for the demo and the tests.

Drawn with reportlab in Noto Serif, so the Vietnamese text is real text with embedded fonts.
The signature block leaves a free area where the visible signatures go; its position is
returned so the demo and tests can place stamps where a clerk would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

FONT_DIR = Path("/usr/share/fonts/truetype/noto")
_REGISTERED: set[str] = set()


def _font(name: str, file: str) -> str:
    if name not in _REGISTERED:
        pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / file)))
        _REGISTERED.add(name)
    return name


@dataclass(frozen=True)
class SampleDocument:
    path: Path
    code: str
    signature_box: tuple[float, float, float, float]  # where the signer's stamp goes (page 1)


def decision_pdf(
    path: Path,
    *,
    agency: str = "UBND TỈNH NGHỆ AN",
    number: str = "15/QĐ-UBND",
    signer_title: str = "CHỦ TỊCH",
    signer_name: str = "Nguyễn Văn An",
    subject: str = "Về việc ban hành Quy chế tiếp nhận và xử lý văn bản điện tử",
    pages: int = 1,
) -> SampleDocument:
    """Write a one- or multi-page decision and return where its signature block is."""
    regular = _font("NotoSerif", "NotoSerif-Regular.ttf")
    bold = _font("NotoSerif-Bold", "NotoSerif-Bold.ttf")
    width, height = A4
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(f"Quyết định số {number}")
    pdf.setAuthor(agency)
    pdf.setFont(bold, 12)
    pdf.drawCentredString(150, height - 60, agency)
    pdf.drawCentredString(400, height - 60, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM")
    pdf.drawCentredString(400, height - 76, "Độc lập - Tự do - Hạnh phúc")
    pdf.setFont(regular, 12)
    pdf.drawCentredString(150, height - 90, f"Số: {number}")
    pdf.drawCentredString(400, height - 100, "Nghệ An, ngày 25 tháng 11 năm 2026")
    pdf.setFont(bold, 14)
    pdf.drawCentredString(width / 2, height - 150, "QUYẾT ĐỊNH")
    pdf.setFont(bold, 12)
    pdf.drawCentredString(width / 2, height - 168, subject)
    pdf.setFont(regular, 12)
    body = [
        "Căn cứ Luật Tổ chức chính quyền địa phương;",
        "Căn cứ Nghị định số 30/2020/NĐ-CP ngày 05/3/2020 của Chính phủ về công tác văn thư;",
        "Xét đề nghị của Giám đốc Sở Nội vụ,",
        "Điều 1. Ban hành kèm theo Quyết định này Quy chế tiếp nhận, xử lý văn bản điện tử.",
        "Điều 2. Quyết định này có hiệu lực kể từ ngày ký.",
        "Điều 3. Chánh Văn phòng UBND tỉnh, Giám đốc các sở, Chủ tịch UBND các huyện, xã",
        "chịu trách nhiệm thi hành Quyết định này./.",
    ]
    y = height - 210
    for line in body:
        pdf.drawString(72, y, line)
        y -= 20
    for page in range(2, pages + 1):
        pdf.showPage()
        pdf.setFont(regular, 12)
        pdf.drawString(72, height - 72, f"Phụ lục - trang {page}")
    block_top = y - 30
    pdf.setFont(bold, 12)
    pdf.drawCentredString(420, block_top, "TM. ỦY BAN NHÂN DÂN")
    pdf.drawCentredString(420, block_top - 16, signer_title)
    pdf.drawCentredString(420, block_top - 130, signer_name)
    pdf.save()
    box = (330.0, block_top - 115, 510.0, block_top - 25)
    return SampleDocument(path, number, box)
