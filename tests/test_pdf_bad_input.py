"""Input that is not a usable PDF: one clear line and exit code 2, for sign and verify."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import KysoEnv
from .pdftools import key_ref, sample


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = sample(tmp_path, "good.pdf")
    data = good.read_bytes()
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pdf"
    text.write_text("Đây không phải là PDF", encoding="utf-8")
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(data[: len(data) // 3])
    encrypted = tmp_path / "encrypted.pdf"
    subprocess.run(
        ["qpdf", "--encrypt", "user-pw", "owner-pw", "256", "--", str(good), str(encrypted)],
        check=True,
    )
    huge = tmp_path / "huge.pdf"
    with huge.open("wb") as stream:
        stream.write(b"%PDF-1.7\n")
        stream.truncate(600 * 1024 * 1024)  # sparse: costs no disk
    missing = tmp_path / "missing.pdf"
    return {
        "empty": (empty, "empty"),
        "text": (text, "not a PDF"),
        "truncated": (truncated, "not a readable PDF"),
        "encrypted": (encrypted, "encrypted"),
        "huge": (huge, "larger than"),
        "missing": (missing, "does not exist"),
    }


CASES = ["empty", "text", "truncated", "encrypted", "huge", "missing"]


@pytest.mark.system
@pytest.mark.parametrize("case", CASES)
def test_verify_bad_input(kyso_env: KysoEnv, tmp_path: Path, case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    result = kyso_env.kyso("verify", str(path), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.system
@pytest.mark.parametrize("case", CASES)
def test_sign_bad_input(kyso_env: KysoEnv, tmp_path: Path, case: str) -> None:
    path, message = _bad_inputs(tmp_path)[case]
    output = tmp_path / "out.pdf"
    result = kyso_env.kyso(
        "sign",
        "pdf",
        str(path),
        "-o",
        str(output),
        "--key",
        key_ref(kyso_env, "person-nguyen-van-an"),
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not output.exists()
    assert not list(tmp_path.glob(".signing-*")), "no half-written output may remain"


@pytest.mark.system
def test_bad_box_and_level_are_usage_errors(kyso_env: KysoEnv, tmp_path: Path) -> None:
    good = sample(tmp_path)
    key = key_ref(kyso_env, "person-nguyen-van-an")
    for extra in (["--level", "B-X"], ["--visible", "--box", "1,2,3"]):
        result = kyso_env.kyso(
            "sign",
            "pdf",
            str(good),
            "-o",
            str(tmp_path / "o.pdf"),
            "--key",
            key,
            *extra,
            check=False,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr
