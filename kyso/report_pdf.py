"""The validation report as a PDF, for the file: the fourth view of :class:`signer.report.Report`
(with the CLI text, the JSON and the web page), drawn with reportlab in Noto Serif so the
Vietnamese text is real, embedded text.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from signer.explain import vietnam_time

from .i18n import change_text, language, term, translate
from .samples import _font

COLOURS = {
    "TOTAL_PASSED": colors.HexColor("#1e7b34"),
    "INDETERMINATE": colors.HexColor("#b26a00"),
    "TOTAL_FAILED": colors.HexColor("#b3261e"),
}


def _time(text: str | None) -> str:
    if not text:
        return "–"
    try:
        return vietnam_time(dt.datetime.fromisoformat(text))
    except ValueError:
        return text


def render_report_pdf(report: dict[str, Any], lang: str = "vi") -> bytes:
    """A4 PDF of a report in its JSON form (``Report.to_dict()``)."""
    lang = language(lang)
    regular = _font("NotoSerif", "NotoSerif-Regular.ttf")
    bold = _font("NotoSerif-Bold", "NotoSerif-Bold.ttf")
    base = ParagraphStyle("base", fontName=regular, fontSize=10, leading=13)
    small = ParagraphStyle("small", parent=base, fontSize=8.5, leading=11)
    heading = ParagraphStyle("h1", parent=base, fontName=bold, fontSize=16, leading=20)
    subheading = ParagraphStyle("h2", parent=base, fontName=bold, fontSize=12, leading=16)

    def t(key: str) -> str:
        return translate(lang, key)

    def p(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph("<br/>".join(escape(line) for line in text.split("\n")), style)

    story: list[Any] = [p(t("report.title"), heading), Spacer(1, 4 * mm)]
    story.append(p(f"{t('report.document')}: {report.get('document', '')}"))
    story.append(p(f"SHA-256: {report.get('document_sha256', '')}", small))
    story.append(p(f"{t('verify.validated_at')}: {_time(report.get('validation_time'))}"))
    summary = t("verify.summary_passed") if report.get("passed") else t("verify.summary_failed")
    story += [Spacer(1, 2 * mm), p(summary)]
    for problem in report.get("problems", []):
        story.append(p(f"! {problem}", small))
    signatures = report.get("signatures", [])
    if not signatures:
        story.append(p(t("verify.no_signatures")))
    for number, sig in enumerate(signatures, 1):
        indication = str(sig.get("indication", "INDETERMINATE"))
        colour = COLOURS.get(indication, COLOURS["INDETERMINATE"])
        verdict = t(f"indication.{indication}")
        sub = f" / {sig['sub_indication']}" if sig.get("sub_indication") else ""
        title = f"{t('verify.signature')} {number}: {verdict} ({indication}{sub})"
        title_style = ParagraphStyle("banner", parent=subheading, textColor=colors.white)
        banner = Table([[p(title, title_style)]], colWidths=[170 * mm])
        banner.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colour)]))
        story += [Spacer(1, 6 * mm), banner, Spacer(1, 2 * mm)]
        explanation = sig.get("explanation_vi") if lang == "vi" else sig.get("explanation_en")
        story.append(p(explanation or ""))
        rows = _rows(sig, lang)
        table = Table([[p(k, small), p(v, small)] for k, v in rows], colWidths=[45 * mm, 125 * mm])
        table.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ]
            )
        )
        story += [Spacer(1, 2 * mm), table]
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=t("report.title"),
        author="Kyso",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
    )
    document.build(story)
    return buffer.getvalue()


def _rows(sig: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    def t(key: str) -> str:
        return translate(lang, key)

    rows: list[tuple[str, str]] = []
    signer = sig.get("signer") or {}
    if signer:
        who = signer.get("common_name", "")
        if signer.get("organization") and signer.get("organization") != who:
            who += f" — {signer['organization']}"
        if signer.get("agency_code"):
            who += f" ({signer['agency_code']})"
        rows.append((t("verify.signer"), who))
    if sig.get("timestamp_time"):
        rows.append(
            (t("verify.when"), f"{_time(sig['timestamp_time'])} ({t('verify.timestamped')})")
        )
    elif sig.get("claimed_signing_time"):
        rows.append(
            (t("verify.when"), f"{_time(sig['claimed_signing_time'])} ({t('verify.claimed')})")
        )
    rows.append((t("verify.level"), sig.get("level") or "–"))
    coverage = sig.get("coverage")
    rows.append((t("verify.coverage"), term(lang, "coverage", coverage) if coverage else "–"))
    chain = [
        f"{c.get('common_name')} · {c.get('serial')} · {t('verify.valid_until')} "
        f"{_time(c.get('not_after'))}"
        for c in sig.get("chain", [])
    ]
    rows.append((t("verify.chain"), "\n".join(chain) or "–"))
    evidence = [
        f"{e.get('kind')} {term(lang, 'status', e.get('status'))} · "
        f"{t('verify.source.' + str(e.get('source')))}"
        + (f" · {_time(e.get('produced_at'))}" if e.get("produced_at") else "")
        for e in sig.get("revocation", [])
    ]
    rows.append((t("verify.revocation"), "\n".join(evidence) or t("verify.no_revocation")))
    changes = [
        f"{t('verify.revision')} {c.get('revision')}: {change_text(lang, c.get('description', ''))}"
        f" ({t('verify.allowed') if c.get('allowed') else t('verify.not_allowed')})"
        for c in sig.get("changes", [])
    ]
    rows.append((t("verify.changes"), "\n".join(changes) or t("verify.no_changes")))
    if sig.get("details"):
        rows.append((t("verify.details"), "\n".join(sig["details"])))
    return [(k, v) for k, v in rows]
