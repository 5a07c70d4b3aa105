"""Time and memory bounds on verification, for the attack corpus (issue: hardening, part 4).

``kyso_verify`` runs ``kyso verify`` in a subprocess and measures what it cost: the CPU time
and the peak resident memory of that process (both read on its way out), and its wall time.
``bounded`` bounds an in-process call the same way, by CPU time and the growth of this
process's peak. The bound is on CPU time, the work a hostile file makes the verifier do: wall
time also counts whatever else the machine runs (on a 2-core CI machine under a parallel load,
a 6 s verification took 10.7 s of wall time). Wall time still bounds a hang: a verification
still running after ``3 × TIME_LIMIT`` fails.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import KYSO, KysoEnv

MIB = 1024 * 1024
TIME_LIMIT = 10.0  # seconds of CPU time for one verification
MEMORY_LIMIT = 500 * MIB  # memory one verification may add


@dataclass(frozen=True)
class Run:
    returncode: int
    seconds: float  # CPU time (user + system)
    peak: int  # bytes: the process's peak resident set size (VmHWM)
    output: str

    def check(self, name: str, baseline: int = 0) -> None:
        """Within TIME_LIMIT, and under MEMORY_LIMIT above ``baseline`` bytes; no traceback."""
        extra = self.peak - baseline
        memory = f"{extra / MIB:+.0f} MiB" if baseline else f"peak {self.peak / MIB:.0f} MiB"
        print(f"{name}: exit {self.returncode}, {self.seconds:.2f} s of CPU, {memory}")
        assert self.seconds < TIME_LIMIT, f"{name} took {self.seconds:.1f} s of CPU"
        assert extra < MEMORY_LIMIT, f"{name} used {extra / MIB:.0f} MiB"
        assert "Traceback" not in self.output, self.output[-3000:]


# Runs the kyso script and, on the way out, records its CPU time and VmHWM: the peak resident
# memory of this process image. (getrusage's ru_maxrss will not do: Linux carries the parent's
# resident size over fork and exec into it, and the parent here is a pytest process of a few
# hundred MiB.)
MEASURED = """
import atexit, os, runpy, sys
sink = sys.argv[1]
def record():
    times = os.times()
    with open("/proc/self/status") as status, open(sink, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM")))
        out.write(f"cpu {times.user + times.system}\\n")
atexit.register(record)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def kyso_verify(env: KysoEnv, path: Path, *options: str, timeout: float = 3 * TIME_LIMIT) -> Run:
    """``kyso verify [options] path`` in a subprocess: exit code, CPU time, peak memory."""
    log, peak = path.with_suffix(".out"), path.with_suffix(".hwm")
    command = [sys.executable, "-c", MEASURED, str(peak), KYSO, "verify", *options, str(path)]
    started = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, env=env.env, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kyso verify {path.name} still ran after {timeout} s")
    wall = time.monotonic() - started
    log.write_bytes(result.stdout + result.stderr)
    hwm, cpu = peak.read_text().splitlines()  # "VmHWM:  123456 kB", "cpu 1.23"
    print(f"{path.name}: {wall:.2f} s of wall time")
    return Run(
        result.returncode,
        float(cpu.split()[1]),
        int(hwm.split()[1]) * 1024,
        log.read_text(errors="replace"),
    )


@contextmanager
def bounded(name: str, cpu_limit: float = TIME_LIMIT) -> Iterator[None]:
    """An in-process call within ``cpu_limit`` seconds of CPU time that raises this process's
    peak memory by less than MEMORY_LIMIT (whatever it allocated stayed under that, or under an
    earlier peak)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.process_time()
    try:
        yield
    finally:  # a refusal (an exception) is measured too
        seconds = time.process_time() - started
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        assert seconds < cpu_limit, f"{name} took {seconds:.1f} s of CPU time"
        assert growth < MEMORY_LIMIT, f"{name} raised the peak memory by {growth / MIB:.0f} MiB"
