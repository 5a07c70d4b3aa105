"""schemas/openapi.yaml: a valid OpenAPI 3.1 document, served as is, matching the app's routes,
and a bounded schemathesis run against the live server that finds no 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate

from kyso.app import create_app
from kyso.openapi import load_openapi, operations

from .conftest import PASSPHRASE, Demo
from .test_api_errors import settings_of
from .webtools import create_token

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = load_openapi()
    assert document["openapi"].startswith("3.1")
    validate(document)
    text = str(document)
    assert "report.schema.json" not in text and "#/$defs/" not in text  # refs all inlined


def test_the_served_document_and_docs_page(demo: Demo) -> None:
    response = requests.get(f"{demo.url}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json() == load_openapi()
    page = requests.get(f"{demo.url}/api/v1/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for method, path, operation in operations(load_openapi()):
        assert path in page.text and operation["operationId"] in page.text, path
    assert "<script" not in page.text  # rendered server-side, nothing from a CDN


def test_the_document_matches_the_apps_routes(demo: Demo) -> None:
    """Every documented operation exists, and every route of the signing API is documented.

    Other blueprints under /api/v1 (the exchange relay) are held to the first half only: once
    their paths are in schemas/openapi.yaml, they are checked too.
    """
    app = create_app(settings_of(demo.env), PASSPHRASE.encode())
    documented = {(method, path) for method, path, _ in operations(load_openapi())}
    routes = {
        (method, rule.rule): rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) - IGNORED_METHODS
    }
    assert documented <= set(routes), documented - set(routes)
    signing_api = {route for route, endpoint in routes.items() if endpoint.startswith("api.")}
    assert signing_api == {route for route in documented if routes[route].startswith("api.")}
    assert signing_api <= documented, signing_api - documented


def test_schemathesis_finds_no_server_error(demo: Demo, tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    _, token = create_token(demo.env, "000.00.00.H41", "seal-000.00.00.H41", rate=100_000)
    log = demo.env.data / f"server-{demo.env.port}.log"
    before = log.stat().st_size
    command = [
        str(SCHEMATHESIS), "run", f"{demo.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--checks", "all",
        # Random bytes are valid "binary" files for the schema but not PDFs: 415/422 is
        # right for them, and ISO 8601 is laxer than RFC 3339: skip these two checks.
        "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
        "--max-time", "25", "--workers", "2", "--request-timeout", "30",
        "--seed", "20261125", "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output
    new_log = log.read_bytes()[before:].decode(errors="replace")
    assert "unexpected error" not in new_log, new_log[-4000:]
