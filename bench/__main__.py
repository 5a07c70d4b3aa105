"""Run the benchmarks and write bench/results.md.

Each figure is measured with its baseline in the same run, on the same machine, and the
table gives the ratio. Keep the whole run within a few minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results.md"
BIG_PDF_MB = int(os.environ.get("KYSO_BENCH_PDF_MB", "100"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_pki(root: Path) -> tuple[Path, Path]:
    """A throwaway PKI (no server): returns the seal key file and the passphrase file."""
    secret = root / "passphrase"
    secret.write_text("bench-passphrase\n")
    env = {**os.environ, "KYSO_DATA": str(root / "data"), "KYSO_PASSPHRASE": "bench-passphrase"}
    kyso = Path(sys.executable).parent / "kyso"
    subprocess.run([str(kyso), "pki", "init"], env=env, check=True, capture_output=True)
    return root / "data" / "pki" / "keys" / "seal-000.00.00.H41.p12", secret


def make_big_pdf(path: Path, megabytes: int) -> None:
    """A valid PDF of ``megabytes`` MiB: a sample decision plus an incompressible stream."""
    from io import BytesIO

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from kyso.samples import decision_pdf

    small = decision_pdf(path.with_suffix(".small.pdf")).path
    writer = IncrementalPdfFileWriter(BytesIO(small.read_bytes()))
    blob = writer.add_object(generic.StreamObject(stream_data=os.urandom(megabytes * 2**20)))
    writer.root[generic.NameObject("/KysoBenchPayload")] = blob
    writer.update_root()
    with path.open("wb") as out:
        writer.write(out)


def measure(operation: str, pdf: Path, key: Path, secret: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.worker", operation, str(pdf), str(key), str(secret)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def big_pdf_rows(work: Path, key: Path, secret: Path) -> list[str]:
    pdf = work / "big.pdf"
    make_big_pdf(pdf, BIG_PDF_MB)
    size = pdf.stat().st_size
    base = measure("baseline", pdf, key, secret)
    sha = measure("sha256", pdf, key, secret)
    sign = measure("sign", pdf, key, secret)
    verify = measure("verify", pdf.with_suffix(".signed.pdf"), key, secret)

    def extra(m: dict[str, float]) -> float:
        return (m["peak_rss_bytes"] - base["peak_rss_bytes"]) / size

    mb = size / 2**20
    return [
        f"| {mb:.0f} MiB PDF: sign (B-B), time | {sign['seconds']:.2f} s | "
        f"sha256 {sha['seconds']:.2f} s | {sign['seconds'] / sha['seconds']:.1f}× |",
        f"| {mb:.0f} MiB PDF: sign, extra memory / file size | {extra(sign):.2f}× | "
        f"sha256 {extra(sha):.2f}× | – |",
        f"| {mb:.0f} MiB PDF: verify (offline), time | {verify['seconds']:.2f} s | "
        f"sha256 {sha['seconds']:.2f} s | {verify['seconds'] / sha['seconds']:.1f}× |",
        f"| {mb:.0f} MiB PDF: verify, extra memory / file size | {extra(verify):.2f}× | "
        f"sha256 {extra(sha):.2f}× | – |",
    ]


def main() -> None:
    header = [
        "# Kyso benchmarks",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "Extra memory is the peak RSS of the operation's process minus that of a process that",
        "only imports the same modules, divided by the file size.",
        "",
        "| figure | Kyso | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    print("\n".join(header[:3]), flush=True)
    with tempfile.TemporaryDirectory(prefix="kyso-bench-") as tmp:
        work = Path(tmp)
        key, secret = make_pki(work)
        rows = big_pdf_rows(work, key, secret)
    RESULTS.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    print("\n".join(rows))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
