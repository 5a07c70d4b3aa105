"""The web pages over HTTP (no browser): sessions, CSRF, the login limit, roles, signing and
verifying through the forms, the admin page."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import requests
from PIL import Image

from kyso.app import create_app
from kyso.samples import decision_pdf

from .conftest import PASSPHRASE, Demo
from .pdftools import sign_with
from .test_api_errors import settings_of
from .webtools import assert_problem, create_token, csrf_from, login


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


REPORT_SCHEMA = json.loads(
    (Path(__file__).parents[1] / "schemas" / "report.schema.json").read_text()
)


def add_account(demo: Demo, username: str, role: str, password: str, *extra: str) -> None:
    demo.env.cli(
        "accounts", "add", username, "--name", "Lê Thị Thu", "--role", role, *extra,
        "--password-stdin", input=password + "\n",
    )  # fmt: skip


def test_session_cookie_flags(demo: Demo, kyso_env) -> None:
    response = demo.http.get(f"{demo.url}/login", timeout=10)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("kyso_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    # Served over HTTPS (KYSO_SECURE_COOKIES=1), the cookie is Secure.
    app = create_app(settings_of(kyso_env, secure_cookies=True), PASSPHRASE.encode())
    secure = app.test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" in secure and "HttpOnly" in secure


def test_posts_without_the_csrf_token_are_refused(demo: Demo) -> None:
    fresh = demo.session()
    fresh.get(f"{demo.url}/login", timeout=10)
    response = fresh.post(
        f"{demo.url}/login",
        data={"username": "an", "password": demo.password},
        headers={"Accept": "text/html"},
        timeout=10,
    )
    assert response.status_code == 403 and 'data-code="csrf-failed"' in response.text
    assert fresh.get(f"{demo.url}/sign", allow_redirects=False, timeout=10).status_code == 302

    officer = login(demo, "an")
    token = officer.headers.pop("X-CSRF-Token")
    pdf = decision_pdf(Path(demo.env.data) / "csrf.pdf").path.read_bytes()
    response = officer.post(
        f"{demo.url}/sign/uploads",
        files={"file": ("a.pdf", pdf)},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert_problem(response, 403, "csrf-failed")
    response = officer.post(
        f"{demo.url}/verify", files={"document": ("a.pdf", pdf)},
        data={"csrf_token": "not-the-token"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 403
    assert officer.post(f"{demo.url}/logout", timeout=10).status_code == 403
    # with the token, the same requests go through
    officer.headers["X-CSRF-Token"] = token
    ok = officer.post(
        f"{demo.url}/sign/uploads",
        files={"file": ("a.pdf", pdf)},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert ok.status_code == 200, ok.text


def test_wrong_passwords_make_the_username_wait(demo: Demo) -> None:
    add_account(demo, "thu", "auditor", "mat-khau-cua-thu")
    session = demo.session()
    token = csrf_from(session.get(f"{demo.url}/login", timeout=10).text)

    def attempt(password: str) -> requests.Response:
        return session.post(
            f"{demo.url}/login",
            data={"username": "thu", "password": password, "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        )

    for _ in range(4):
        response = attempt("sai-mat-khau")
        assert response.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu." in response.text
    response = attempt("sai-mat-khau")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert "Đăng nhập sai quá nhiều lần" in response.text
    # other users are not affected (tests/test_web_login.py moves the clock past the wait)
    assert login(demo, "khoa").get(f"{demo.url}/verify", timeout=10).ok


def test_roles(demo: Demo) -> None:
    stranger = demo.http.get(f"{demo.url}/sign", allow_redirects=False, timeout=10)
    assert stranger.status_code == 302 and "/login?next=" in stranger.headers["Location"]
    auditor = login(demo, "khoa")
    assert auditor.get(f"{demo.url}/sign", timeout=10).status_code == 403
    assert auditor.get(f"{demo.url}/admin", timeout=10).status_code == 403
    assert auditor.get(f"{demo.url}/verify", timeout=10).status_code == 200
    officer = login(demo, "an")
    assert officer.get(f"{demo.url}/admin", timeout=10).status_code == 403
    page = officer.get(f"{demo.url}/sign", timeout=10).text
    assert (
        "Chữ ký cá nhân — Nguyễn Văn An" in page and "Con dấu cơ quan — UBND tỉnh Nghệ An" in page
    )
    clerk_page = login(demo, "lan").get(f"{demo.url}/sign", timeout=10).text
    assert "Con dấu cơ quan" in clerk_page and "Chữ ký cá nhân" not in clerk_page


def test_admin_page_lists_and_revokes(demo: Demo) -> None:
    token_id, secret = create_token(demo.env, "000.00.00.H41", "seal-000.00.00.H41")
    admin = login(demo, "admin")
    page = admin.get(f"{demo.url}/admin", timeout=10)
    assert page.status_code == 200
    for text in ("UBND tỉnh Nghệ An", "000.00.21.H41", "UBND xã Hưng Lộc", "Nguyễn Văn An",
                 "Kyso Issuing CA", token_id, "seal-000.00.00.H41", "Hoàng Thị Lan"):  # fmt: skip
        assert text in page.text, text
    assert secret not in page.text
    response = admin.post(f"{demo.url}/admin/tokens/{token_id}/revoke", timeout=10)
    assert response.status_code == 200 and "đã thu hồi" in response.text
    keys = demo.http.get(
        f"{demo.url}/api/v1/keys", headers={"Authorization": f"Bearer {secret}"}, timeout=10
    )
    assert_problem(keys, 401, "invalid-token")


def test_sign_through_the_form_endpoints(demo: Demo, tmp_path: Path) -> None:
    officer = login(demo, "an")
    officer.headers["Accept"] = "application/json"
    document = decision_pdf(tmp_path / "quyết định.pdf")
    with document.path.open("rb") as stream:
        upload = officer.post(
            f"{demo.url}/sign/uploads", files={"file": ("quyết định.pdf", stream)}, timeout=30
        ).json()
    assert upload["name"] == "quyết định.pdf"
    page = upload["pages"][0]
    assert page["box"] == [
        0.0,
        0.0,
        pytest.approx(595.2756, abs=0.01),
        pytest.approx(841.8898, abs=0.01),
    ]
    png = officer.get(f"{demo.url}{upload['page_url']}1.png", timeout=30)
    assert png.headers["Content-Type"] == "image/png"
    width, height = Image.open(io.BytesIO(png.content)).size
    assert (
        max(width, height) == 1000 and abs(width / height - page["width"] / page["height"]) < 0.01
    )

    sign_url = f"{demo.url}/sign/uploads/{upload['id']}/sign"
    box = list(document.signature_box)
    refused = officer.post(sign_url, json={"key": "seal-000.00.02.H41", "box": box}, timeout=30)
    assert_problem(refused, 403, "key-not-allowed")
    signed = officer.post(
        sign_url, json={"key": "person-nguyen-van-an", "level": "B-T", "page": 1, "box": box},
        timeout=60,
    ).json()  # fmt: skip
    assert signed["signer"] == "Nguyễn Văn An" and signed["name"] == "quyết định-signed.pdf"
    sealed = officer.post(
        f"{demo.url}/sign/uploads/{signed['id']}/sign",
        json={"key": "seal-000.00.00.H41", "level": "B-B", "box": None},
        timeout=60,
    ).json()
    download = officer.get(f"{demo.url}{sealed['download']}", timeout=30)
    assert download.headers["Content-Type"] == "application/pdf"
    assert "attachment" in download.headers["Content-Disposition"]
    report = demo.http.post(
        f"{demo.url}/api/v1/verify", files={"file": ("s.pdf", download.content)}, timeout=60
    ).json()
    assert report["passed"] and len(report["signatures"]) == 2

    # a clerk affixes the seal, never the officer's personal signature
    clerk = login(demo, "lan")
    clerk.headers["Accept"] = "application/json"
    with document.path.open("rb") as stream:
        theirs = clerk.post(f"{demo.url}/sign/uploads", files={"file": ("a.pdf", stream)}).json()
    response = clerk.post(
        f"{demo.url}/sign/uploads/{theirs['id']}/sign",
        json={"key": "person-nguyen-van-an", "box": box},
        timeout=30,
    )
    assert_problem(response, 403, "key-not-allowed")
    # nor can anyone see another user's uploads
    assert clerk.get(f"{demo.url}{upload['page_url']}1.png", timeout=10).status_code == 404


def test_uploads_that_are_not_pdfs(demo: Demo) -> None:
    officer = login(demo, "an")
    officer.headers["Accept"] = "application/json"
    response = officer.post(
        f"{demo.url}/sign/uploads", files={"file": ("a.png", b"\x89PNG\r\n\x1a\n")}, timeout=10
    )
    assert_problem(response, 415, "unsupported-format")
    response = officer.post(
        f"{demo.url}/sign/uploads", files={"file": ("a.pdf", b"%PDF-1.7\n1 0 obj")}, timeout=10
    )
    assert_problem(response, 422, "invalid-document")


def sign_through_api(demo: Demo, kind: str, name: str, content: bytes, key: str) -> bytes:
    """``content`` signed by ``POST /api/v1/sign/{kind}`` with the demo token."""
    response = demo.http.post(
        f"{demo.url}/api/v1/sign/{kind}", headers=demo.auth, timeout=60,
        files={"file": (name, content)}, data={"key": key},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.content


def audit(auditor: requests.Session, demo: Demo, **files: tuple[str, bytes]) -> requests.Response:
    """The auditor page's answer to an upload (``document=``, and ``content=`` if detached)."""
    return auditor.post(f"{demo.url}/verify", files=files, timeout=60)


def test_auditor_page_reports_and_downloads(demo: Demo, tmp_path: Path) -> None:
    # An's own signature (with his key, as on the sign page): the demo token holds the seal only.
    sign_with(demo.env, decision_pdf(tmp_path / "qd.pdf").path, tmp_path / "an.pdf",
              "person-nguyen-van-an")  # fmt: skip
    signed = (tmp_path / "an.pdf").read_bytes()
    auditor = login(demo, "khoa")
    response = audit(auditor, demo, document=("quyết định.pdf", signed))
    assert response.status_code == 200 and "/reports/" in response.url
    assert 'data-indication="TOTAL_PASSED"' in response.text
    assert "Hợp lệ" in response.text and "Nguyễn Văn An" in response.text
    report_url = response.url
    as_json = auditor.get(f"{report_url}.json", timeout=10)
    jsonschema.validate(as_json.json(), REPORT_SCHEMA)
    assert "attachment" in as_json.headers["Content-Disposition"]
    as_pdf = auditor.get(f"{report_url}.pdf", timeout=30)
    assert as_pdf.headers["Content-Type"] == "application/pdf"
    (tmp_path / "report.pdf").write_bytes(as_pdf.content)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True
    ).stdout
    assert "Báo cáo kiểm tra chữ ký số" in text and "Nguyễn Văn An" in text and "Hợp lệ" in text
    # the English switch
    english = auditor.get(f"{demo.url}/lang/en", params={"next": response.url.split(demo.url)[1]})
    assert (
        "Valid" in english.text
        and "The signature by Nguyễn Văn An (UBND tỉnh Nghệ An) is valid" in english.text
    )
    # reports are private to who made them
    other = login(demo, "admin")
    assert other.get(report_url, timeout=10).status_code == 404


def test_auditor_page_checks_a_detached_signature(demo: Demo, tmp_path: Path) -> None:
    content = b"Bien ban hop ngay 25/11/2026\n"
    signature = sign_through_api(demo, "cms", "bien-ban.txt", content, "seal-000.00.00.H41")
    auditor = login(demo, "khoa")
    response = audit(
        auditor, demo, document=("bien-ban.txt.p7s", signature), content=("bien-ban.txt", content)
    )
    assert 'data-indication="TOTAL_PASSED"' in response.text and "CAdES" in response.text
    tampered = audit(
        auditor, demo, document=("b.p7s", signature), content=("b.txt", content + b"!")
    )
    assert 'data-indication="TOTAL_FAILED"' in tampered.text
    assert "Nội dung đã bị thay đổi sau khi ký." in tampered.text


def test_every_word_of_the_pages_is_translated() -> None:
    import re

    from kyso.i18n import MESSAGES

    templates = Path(__file__).parents[1] / "kyso" / "templates"
    pages = ("base", "login", "error", "sign", "verify", "report", "admin", "api_docs",
             "certificates")  # fmt: skip
    used = set()
    for page in pages:
        text = (templates / f"{page}.html").read_text(encoding="utf-8")
        used |= {k for k in re.findall(r"\bt\('([a-z_.]+)'", text) if not k.endswith(".")}
    for kind in ("person", "seal"):
        used.add(f"kind.{kind}")
    dynamic = {k for k in MESSAGES["vi"] if k.split(".")[0] in ("role", "indication", "kind")}
    assert used - set(MESSAGES["vi"]) == set()
    assert (used | dynamic) - set(MESSAGES["en"]) == set()


def test_auditor_page_checks_an_edxml_package(demo: Demo) -> None:
    from signer import edxml

    from .exchangetools import package_bytes

    attachment = edxml.Attachment("cid:bc", "bao-cao.txt", "text/plain", "Báo cáo quý IV".encode())
    package = package_bytes(None, "000.00.00.H41", ["000.00.21.H41"], [attachment])
    signed = sign_through_api(demo, "xml", "goi-tin.xml", package, "seal-000.00.00.H41")
    auditor = login(demo, "khoa")
    response = audit(auditor, demo, document=("goi-tin.xml", signed))
    assert 'data-indication="TOTAL_PASSED"' in response.text and "XAdES" in response.text
    assert "UBND tỉnh Nghệ An" in response.text
    encoded = base64.b64encode(attachment.data)
    assert signed.count(encoded) == 1
    changed = base64.b64encode(attachment.data.replace(b"IV", b"III"))
    tampered = audit(auditor, demo, document=("goi-tin.xml", signed.replace(encoded, changed)))
    assert 'data-indication="TOTAL_FAILED"' in tampered.text, tampered.text
    assert "bao-cao.txt" in tampered.text


def test_auditor_page_shows_an_unknown_issuer_in_amber(demo: Demo, tmp_path: Path) -> None:
    from signer.pdf import PdfSignOptions, sign

    from .pdftools import stranger_key

    stranger = stranger_key("Lê Văn Lạ", "UBND tỉnh Hà Tĩnh")
    signed = tmp_path / "stranger.pdf"
    sign(decision_pdf(tmp_path / "qd.pdf").path, signed, stranger, PdfSignOptions())
    auditor = login(demo, "khoa")
    response = audit(auditor, demo, document=("la.pdf", signed.read_bytes()))
    assert 'class="card verdict amber" data-indication="INDETERMINATE"' in response.text
    assert "NO_CERTIFICATE_CHAIN_FOUND" in response.text and "Lê Văn Lạ" in response.text
