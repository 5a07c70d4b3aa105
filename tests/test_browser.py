"""In Debian's headless Chromium (no browser download): an officer signs two PDFs in one batch
by clicking where the signature goes; the downloaded file verifies through the API and pdfsig;
the auditor page shows it valid, with the officer's name, and a tampered copy invalid.

Screenshots of both verdict pages are kept in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from kyso.samples import decision_pdf

from .conftest import Demo
from .pdftools import nss_db, pdfsig

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
A4 = (595.2756, 841.8898)

# A system test (a browser on the live server): `make test` runs it, `make check` does not.
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is missing"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    # Signing and verifying are real work on the server: wait as long for a verdict as for
    # an action (the 5 s default is a UI-animation budget, too short on a busy CI machine).
    expect.set_options(timeout=30_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def log_in(browser, demo: Demo, username: str):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(demo.url)
    expect(page.locator("h1")).to_have_text("Đăng nhập")
    page.fill("#username", username)
    page.fill("#password", demo.password)
    page.click("#login-submit")
    return page


def signature_centre(path: Path) -> tuple[float, float]:
    with path.open("rb") as stream:
        reader = PdfFileReader(stream, strict=False)
        _, _, field = next(iter(enumerate_sig_fields(reader)))
        x1, y1, x2, y2 = (float(v) for v in field.get_object()["/Rect"])
    return (x1 + x2) / 2, (y1 + y2) / 2


def test_sign_in_the_browser_then_audit(demo: Demo, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    first = decision_pdf(tmp_path / "quyet-dinh-15.pdf")
    second = decision_pdf(tmp_path / "quyet-dinh-16.pdf", number="16/QĐ-UBND")
    page = log_in(browser, demo, "an")
    page.wait_for_url("**/sign")
    expect(page.locator("#current-user")).to_contain_text("Nguyễn Văn An")

    page.set_input_files("#files", [str(first.path), str(second.path)])
    statuses = page.locator("#file-list tbody td.status-uploaded")
    expect(statuses).to_have_count(2)
    image = page.locator("#page-image")
    for _ in range(100):  # the preview is loaded (wait_for_function would need unsafe-eval)
        if image.evaluate("img => img.complete && img.naturalWidth > 0"):
            break
        page.wait_for_timeout(100)
    box = image.bounding_box()
    assert box is not None
    page.select_option("#identity", label="Chữ ký cá nhân — Nguyễn Văn An")
    # Click the middle of the signature block, between the title and the name.
    x1, y1, x2, y2 = first.signature_box
    target = ((x1 + x2) / 2, (y1 + y2) / 2)
    image.click(
        position={
            "x": target[0] / A4[0] * box["width"],
            "y": (A4[1] - target[1]) / A4[1] * box["height"],
        }
    )
    expect(page.locator("#marker")).to_be_visible()
    expect(page.locator("#position")).to_contain_text("Vị trí (điểm PDF)")
    page.select_option("#level", "B-T")
    page.click("#sign-button")
    expect(page.locator("#progress-text")).to_have_text("Đã ký 2/2")
    expect(page.locator("#file-list tbody td.status-signed")).to_have_count(2)

    with page.expect_download() as download_info:
        page.locator("a.download").first.click()
    download = download_info.value
    assert download.suggested_filename == "quyet-dinh-15-signed.pdf"
    signed = tmp_path / download.suggested_filename
    download.save_as(signed)
    page.screenshot(path=str(ARTIFACTS / "sign-page.png"), full_page=True)

    # The stamp is where the officer clicked (within a point or two of rounding).
    centre = signature_centre(signed)
    assert abs(centre[0] - target[0]) < 3 and abs(centre[1] - target[1]) < 3, (centre, target)
    report = requests.post(
        f"{demo.url}/api/v1/verify", files={"file": (signed.name, signed.read_bytes())}, timeout=60
    ).json()
    assert report["passed"] is True
    assert [s["indication"] for s in report["signatures"]] == ["TOTAL_PASSED"]
    assert report["signatures"][0]["signer"]["common_name"] == "Nguyễn Văn An"
    assert report["signatures"][0]["level"] == "B-T"
    checked = pdfsig(signed, nss_db(demo.env, tmp_path / "nss"))
    assert "Signature Validation: Signature is Valid." in checked, checked
    assert "Certificate Validation: Certificate is Trusted." in checked

    auditor = log_in(browser, demo, "khoa")
    auditor.wait_for_url("**/verify")
    auditor.set_input_files("#document", str(signed))
    auditor.click("#verify-submit")
    verdict = auditor.locator("article.verdict")
    expect(verdict).to_have_attribute("data-indication", "TOTAL_PASSED")
    expect(verdict.locator(".badge")).to_have_text("Hợp lệ")
    expect(verdict.locator(".signer")).to_contain_text("Nguyễn Văn An")
    expect(verdict.locator(".reason")).to_contain_text("Chữ ký của Nguyễn Văn An")
    expect(verdict).to_contain_text("có dấu thời gian")
    expect(verdict).to_contain_text("OCSP")
    auditor.screenshot(path=str(ARTIFACTS / "verdict-valid.png"), full_page=True)

    tampered = tmp_path / "quyet-dinh-15-tampered.pdf"
    data = bytearray(signed.read_bytes())
    data[2000] ^= 0x01  # one bit inside the signed revision
    tampered.write_bytes(bytes(data))
    auditor.goto(f"{demo.url}/verify")
    auditor.set_input_files("#document", str(tampered))
    auditor.click("#verify-submit")
    verdict = auditor.locator("article.verdict")
    expect(verdict).to_have_attribute("data-indication", "TOTAL_FAILED")
    expect(verdict.locator(".badge")).to_have_text("Không hợp lệ")
    expect(verdict.locator(".reason")).to_contain_text("Nội dung đã bị thay đổi sau khi ký")
    expect(verdict).to_contain_text("HASH_FAILURE")
    auditor.screenshot(path=str(ARTIFACTS / "verdict-tampered.png"), full_page=True)
