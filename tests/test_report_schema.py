"""`kyso verify --json` output matches schemas/report.schema.json, for passing and failing files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from signer.explain import with_explanation
from signer.levels import Level
from signer.report import (
    Coverage,
    DocumentFormat,
    Indication,
    Report,
    SignatureFormat,
    SignatureReport,
    SubIndication,
)

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


def test_a_report_is_frozen_and_its_json_keeps_its_strings() -> None:
    signature = SignatureReport(
        SignatureFormat.XADES,
        "Signature-1",
        Indication.TOTAL_PASSED,
        level=Level.B_T,
        coverage=Coverage.ENTIRE_FILE,
        details=("a note",),
    )
    moment = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    report = Report("a.xml", "00" * 32, DocumentFormat.XML, moment, (signature,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        signature.level = Level.B_B  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.problems = ("added later",)  # type: ignore[misc]

    failed = signature.noted("after").noted("first", first=True)
    failed = with_explanation(failed.finished(SubIndication.HASH_FAILURE))
    assert failed.details == ("first", "a note", "after")
    assert failed.indication is Indication.TOTAL_FAILED
    assert signature.details == ("a note",) and signature.passed  # untouched

    data = Report("a.xml", "00" * 32, DocumentFormat.XML, moment, (failed,)).to_dict()
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    [plain] = data["signatures"]
    assert (data["format"], data["problems"], data["passed"]) == ("XML", [], False)
    assert (plain["format"], plain["level"], plain["coverage"]) == ("XAdES", "B-T", "ENTIRE_FILE")
    assert (plain["indication"], plain["sub_indication"]) == ("TOTAL_FAILED", "HASH_FAILURE")
    assert plain["details"] == ["first", "a note", "after"] and plain["chain"] == []
    assert plain["explanation_en"].startswith("The signature is NOT valid")
