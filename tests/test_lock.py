"""The lock: every requirement of pyproject pinned, in its range, with hashes; checked offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tools" / "check_lock.py"


def check(pyproject: Path, lock: Path, *more: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(pyproject), str(lock), *map(str, more)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_repository_lock_matches_pyproject() -> None:
    result = check(
        ROOT / "pyproject.toml", ROOT / "requirements.lock", ROOT / "tools" / "bootstrap.lock"
    )
    assert result.returncode == 0, result.stderr


def test_the_installed_versions_are_the_locked_ones() -> None:
    """The venv the suite runs in was installed from the lock (a fresh clone equals this one)."""
    from importlib.metadata import version

    from tools.check_lock import read_pins

    pins, _ = read_pins(ROOT / "requirements.lock")
    for name in ("cryptography", "pyhanko", "flask", "sqlalchemy", "lxml", "pip"):
        assert str(pins[name]) == version(name), name


def write_project(tmp: Path, dependency: str) -> Path:
    pyproject = tmp / "pyproject.toml"
    pyproject.write_text(
        f'[project]\nname = "x"\nversion = "1"\ndependencies = ["{dependency}"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8"]\n',
        encoding="utf-8",
    )
    return pyproject


LOCK = "cryptography==51.0.1 \\\n    --hash=sha256:00\npytest==9.2.0 \\\n    --hash=sha256:11\n"


def test_a_requirement_missing_from_the_lock_fails(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK, encoding="utf-8")
    result = check(write_project(tmp_path, "lxml>=5"), lock)
    assert result.returncode == 1
    assert "lxml (pyproject: lxml>=5) is not pinned" in result.stderr
    assert "make lock" in result.stderr


def test_a_pin_outside_the_range_fails(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK, encoding="utf-8")
    result = check(write_project(tmp_path, "cryptography>=43,<51"), lock)
    assert result.returncode == 1
    assert "cryptography==51.0.1 is outside pyproject's range" in result.stderr


def test_a_pin_without_hash_fails(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("cryptography==51.0.1\npytest==9.2.0 \\\n    --hash=sha256:11\n")
    result = check(write_project(tmp_path, "cryptography>=43"), lock)
    assert result.returncode == 1
    assert "cryptography is pinned without a hash" in result.stderr


def test_a_matching_lock_passes(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK, encoding="utf-8")
    assert check(write_project(tmp_path, "cryptography>=43"), lock).returncode == 0
