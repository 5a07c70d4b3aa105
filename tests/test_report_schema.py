"""`kyso verify --json` output matches schemas/report.schema.json, for passing and failing files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from .conftest import Server
from .pdftools import sample, sign_with

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "report.schema.json").read_text())


def test_json_reports_match_the_schema(server: Server, tmp_path: Path) -> None:
    env = server.env
    signed = tmp_path / "signed.pdf"
    sign_with(env, sample(tmp_path), signed, "seal-000.00.00.H41")
    tampered = tmp_path / "tampered.pdf"
    data = bytearray(signed.read_bytes())
    data[2000] ^= 0x01
    tampered.write_bytes(bytes(data))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    verdicts = {}
    for path in (signed, tampered):
        result = env.kyso("verify", str(path), "--json", check=False)
        report = json.loads(result.stdout)
        jsonschema.validate(report, SCHEMA, format_checker=jsonschema.FormatChecker())
        verdicts[path.name] = (result.returncode, report["signatures"][0]["indication"])
    assert verdicts["signed.pdf"] == (0, "TOTAL_PASSED")
    assert verdicts["tampered.pdf"] == (1, "TOTAL_FAILED")
