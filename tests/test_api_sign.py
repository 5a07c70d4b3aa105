"""The signing API with the demo token (the province's seal): PDF (the seal over an officer's
visible signature), XML, CMS, then /verify."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
import requests

from kyso.samples import decision_pdf

from .conftest import Demo
from .pdftools import nss_db, pdfsig
from .webtools import assert_problem, login


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


def api_sign(
    demo: Demo, kind: str, path: Path, name: str | None = None, **data
) -> requests.Response:
    with path.open("rb") as stream:
        return demo.http.post(
            f"{demo.url}/api/v1/sign/{kind}",
            headers=demo.auth,
            files={"file": (name or path.name, stream)},
            data=data,
            timeout=60,
        )


def api_verify(demo: Demo, path: Path, content: Path | None = None) -> dict:
    files = {"file": (path.name, path.read_bytes())}
    if content is not None:
        files["content"] = (content.name, content.read_bytes())
    response = demo.http.post(f"{demo.url}/api/v1/verify", files=files, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def officer_signs(demo: Demo, document: Path, box: list[float]) -> bytes:
    """``document`` with Nguyễn Văn An's visible B-T signature, made by him on the web pages."""
    officer = login(demo, "an")
    officer.headers["Accept"] = "application/json"
    with document.open("rb") as stream:
        upload = officer.post(
            f"{demo.url}/sign/uploads", files={"file": ("qd.pdf", stream)}, timeout=30
        ).json()
    signed = officer.post(
        f"{demo.url}/sign/uploads/{upload['id']}/sign",
        json={"key": "person-nguyen-van-an", "level": "B-T", "box": box},
        timeout=60,
    ).json()
    assert signed["signer"] == "Nguyễn Văn An", signed
    return officer.get(f"{demo.url}{signed['download']}", timeout=30).content


def test_the_seal_over_the_officers_visible_signature(served_demo: Demo, tmp_path: Path) -> None:
    demo = served_demo  # the live server: a system test
    document = decision_pdf(tmp_path / "qd.pdf")
    box = ",".join(f"{v:.1f}" for v in document.signature_box)
    # The demo token holds the seal only: the officer signs himself, on the web pages (a token
    # still holding a personal key: tests/test_api_token_keys.py).
    refused = api_sign(
        demo, "pdf", document.path, key="person-nguyen-van-an", level="B-T", visible="true",
        box=box,
    )  # fmt: skip
    assert_problem(refused, 403, "key-not-allowed")
    person = tmp_path / "quyết định.pdf"
    person.write_bytes(officer_signs(demo, document.path, list(document.signature_box)))
    # The seal: no box, so it goes over the left third of the person's signature.
    response = api_sign(demo, "pdf", person, key="seal-000.00.00.H41", visible="true", level="B-T")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["X-Kyso-Level"] == "B-T"
    assert response.headers["X-Kyso-Field"] == "Signature2"
    assert (
        "filename*=UTF-8''quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh-signed.pdf"
        in (response.headers["Content-Disposition"])
    )
    sealed = tmp_path / "sealed.pdf"
    sealed.write_bytes(response.content)

    report = api_verify(demo, sealed)
    assert report["passed"] is True
    signers = [s["signer"]["common_name"] for s in report["signatures"]]
    assert signers == ["Nguyễn Văn An", "UBND tỉnh Nghệ An"]
    assert [s["level"] for s in report["signatures"]] == ["B-T", "B-T"]
    assert pdfsig(sealed, nss_db(demo.env, tmp_path / "nss")).count("Signature is Valid.") == 2


def test_json_answer_and_default_key(demo: Demo, tmp_path: Path) -> None:
    source = decision_pdf(tmp_path / "qd.pdf").path
    with source.open("rb") as stream:
        response = demo.http.post(
            f"{demo.url}/api/v1/sign/pdf",
            headers={**demo.auth, "Accept": "application/json"},
            files={"file": ("qd.pdf", stream)},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    document = base64.b64decode(body["document"])
    assert document.startswith(b"%PDF-") and hashlib.sha256(document).hexdigest() == body["sha256"]
    # None was named: the token's only key, the agency's seal, signs (several keys: see
    # tests/test_api_token_keys.py).
    assert body["key"] == "seal-000.00.00.H41"
    assert body["signer"]["agency_code"] == "000.00.00.H41"
    assert body["field"] == "Signature1" and body["level"] == "B-B"


def test_xml_and_detached_cms(demo: Demo, tmp_path: Path) -> None:
    xml = tmp_path / "van-ban.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<vanBan><so>15/QĐ-UBND</so></vanBan>\n',
        encoding="utf-8",
    )
    response = api_sign(demo, "xml", xml, key="seal-000.00.00.H41", level="B-T")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/xml")
    signed_xml = tmp_path / "signed.xml"
    signed_xml.write_bytes(response.content)
    report = api_verify(demo, signed_xml)
    assert report["passed"] and report["signatures"][0]["format"] == "XAdES"
    assert report["signatures"][0]["level"] == "B-T"

    content = decision_pdf(tmp_path / "phu-luc.pdf").path
    response = api_sign(demo, "cms", content, key="seal-000.00.00.H41")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/pkcs7-signature"
    signature = tmp_path / "phu-luc.pdf.p7s"
    signature.write_bytes(response.content)
    report = api_verify(demo, signature, content)
    assert report["passed"] and report["signatures"][0]["format"] == "CAdES"
    assert report["signatures"][0]["signer"]["common_name"] == "UBND tỉnh Nghệ An"
    changed = tmp_path / "changed.pdf"
    changed.write_bytes(content.read_bytes() + b"\n%")
    failed = api_verify(demo, signature, changed)["signatures"][0]
    assert (failed["indication"], failed["sub_indication"]) == ("TOTAL_FAILED", "HASH_FAILURE")


def test_keys_of_the_token(demo: Demo) -> None:
    response = demo.http.get(f"{demo.url}/api/v1/keys", headers=demo.auth, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["agency_code"] == "000.00.00.H41"
    # The demo token holds the province's seal only: An's personal key is his own.
    assert [(k["name"], k["kind"]) for k in body["keys"]] == [("seal-000.00.00.H41", "seal")]
    assert all(k["agency_code"] == "000.00.00.H41" for k in body["keys"])


def test_more_concurrent_b_t_requests_than_server_threads(
    served_demo: Demo, tmp_path: Path
) -> None:
    """The server's own TSA is called in process: a request thread never waits for another.

    Were the timestamp fetched over HTTP from this same server, 16 B-T requests on 8 threads
    would hold every thread while their TSA calls queued behind them, and time out.
    """
    demo = served_demo  # the live server: a system test
    from concurrent.futures import ThreadPoolExecutor

    xml = tmp_path / "cong-van.xml"
    xml.write_text("<congVan><so>7/UBND-VX</so></congVan>", encoding="utf-8")

    def sign_one(_: int) -> requests.Response:
        return api_sign(demo, "xml", xml, key="seal-000.00.00.H41", level="B-T")

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(sign_one, range(16)))
    assert [r.status_code for r in responses] == [200] * 16, responses[0].text
    signed = tmp_path / "signed.xml"
    signed.write_bytes(responses[-1].content)
    assert api_verify(demo, signed)["signatures"][0]["level"] == "B-T"


def test_more_concurrent_verifications_than_server_threads(
    served_demo: Demo, tmp_path: Path
) -> None:
    """OCSP and CRLs of the server's own PKI are answered in process during validation.

    Fetched over HTTP from this same server, 16 validations on 8 threads waited for OCSP
    requests queued behind them: 9 of 16 valid documents came out INDETERMINATE/TRY_LATER.
    """
    demo = served_demo  # the live server: a system test
    from concurrent.futures import ThreadPoolExecutor

    response = api_sign(demo, "pdf", decision_pdf(tmp_path / "qd.pdf").path, level="B-B")
    assert response.status_code == 200, response.text
    signed = tmp_path / "qd-signed.pdf"
    signed.write_bytes(response.content)

    with ThreadPoolExecutor(max_workers=16) as pool:
        reports = list(pool.map(lambda _: api_verify(demo, signed), range(16)))
    verdicts = [(s["indication"], s["sub_indication"]) for r in reports for s in r["signatures"]]
    assert verdicts == [("TOTAL_PASSED", None)] * 16
