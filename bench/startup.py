"""Start-up figures: the wall time of whole `kyso` processes, next to Python importing click.

Alone: ``python -m bench startup`` prints this section and replaces it in bench/results.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

RUNS = 7
HEADING = "## Start-up"
CLICK = (sys.executable, "-c", "import click")


def best_wall_times(
    commands: Sequence[Sequence[str]], env: dict[str, str], runs: int = RUNS
) -> list[float]:
    """The shortest wall time (seconds) of each command over ``runs`` rounds; a round runs
    each once, so a busy moment of the machine slows them all alike. None may fail."""
    best = [float("inf")] * len(commands)
    for _ in range(runs):
        for n, command in enumerate(commands):
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, check=False)
            best[n] = min(best[n], time.perf_counter() - start)
            if done.returncode not in (0, 1):  # 1: `kyso verify`'s "not TOTAL_PASSED"
                raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return best


def startup_section(kyso: Path, signed_pdf: Path, env: dict[str, str]) -> list[str]:
    """The section of bench/results.md: its heading, a note and a table (same run, same N)."""
    baseline, help_time, verify = best_wall_times(
        [CLICK, (str(kyso), "--help"), (str(kyso), "verify", "--offline", str(signed_pdf))], env
    )
    click_cell = f'`python -c "import click"` {baseline:.3f} s'
    return [
        HEADING,
        "",
        f"Wall time of a whole process, best of {RUNS} rounds (each runs all three once).",
        "",
        "| figure | Kyso | baseline (same run) | ratio |",
        "|---|---|---|---|",
        f"| `kyso --help` | {help_time:.3f} s | {click_cell} | {help_time / baseline:.1f}× |",
        f"| `kyso verify --offline`, 1-page signed PDF | {verify:.3f} s | {click_cell} | "
        f"{verify / baseline:.1f}× |",
    ]


def with_section(document: str, section: Sequence[str]) -> str:
    """``document`` (bench/results.md) with its start-up section replaced by ``section``, or
    ``section`` added at its end."""
    lines = document.rstrip("\n").splitlines()
    if HEADING not in lines:
        return "\n".join([*lines, "", *section]) + "\n"
    begin = lines.index(HEADING)
    end = begin + 1
    while end < len(lines) and not lines[end].startswith("|"):
        end += 1
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:begin], *section, *lines[end:]]) + "\n"
