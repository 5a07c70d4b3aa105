"""Run the benchmarks and write bench/results.md.

Each figure is measured with its baseline in the same run, on the same machine, and the
table gives the ratio. Keep the whole run within a few minutes on a 2-core machine.

    python -m bench             # everything (a few minutes)
    python -m bench startup     # the start-up section alone (under a minute)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from . import rates, relay, startup
from .ports import free_port

RESULTS = Path(__file__).parent / "results.md"
KYSO = Path(sys.executable).parent / "kyso"
BIG_PDF_MB = int(os.environ.get("KYSO_BENCH_PDF_MB", "100"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_pki(root: Path, base_url: str) -> tuple[Path, Path, dict[str, str]]:
    """A throwaway PKI: returns the seal key file, the passphrase file and the environment."""
    secret = root / "passphrase"
    secret.write_text("bench-passphrase\n")
    env = {**os.environ, "KYSO_DATA": str(root / "data"), "KYSO_PASSPHRASE": "bench-passphrase"}
    subprocess.run(
        [str(KYSO), "pki", "init", "--base-url", base_url], env=env, check=True, capture_output=True
    )
    return root / "data" / "pki" / "keys" / "seal-000.00.00.H41.p12", secret, env


@contextlib.contextmanager
def kyso_server(env: dict[str, str], port: int) -> Iterator[str]:
    """`kyso serve` for the TSA and OCSP the benchmarks use; stopped afterwards."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(KYSO), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 - loopback
                    break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def sample_package() -> bytes:
    import datetime as dt

    from signer import edxml

    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 80  # a 20 KiB attachment
    return edxml.build_package(
        edxml.Package(
            sender=edxml.Organization("000.00.00.H41", "UBND tỉnh Nghệ An"),
            recipients=(edxml.Organization("000.00.21.H41", "UBND thành phố Vinh"),),
            code=edxml.DocumentCode("15", "QĐ-UBND"),
            place="Nghệ An",
            promulgation_date=dt.date(2026, 11, 25),
            document_type=edxml.DocumentType("1", "Quyết định"),
            subject="Về việc phê duyệt kế hoạch chuyển đổi số năm 2027",
            signer_info=edxml.SignerInfo("Nguyễn Văn An", "Chủ tịch"),
            trace=(edxml.TraceHeader("000.00.00.H41", dt.datetime.now(edxml.VN_TZ)),),
            business=edxml.Business(),
            attachments=(edxml.Attachment("cid:qd-15", "QD-15.pdf", "application/pdf", pdf),),
        )
    )


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
        check=True,
        capture_output=True,
        text=True,
    )
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


def _signed(pki: rates.BenchPki, sample: bytes) -> bytes:
    from certs.keystore import open_key
    from signer.pdf import PdfSignOptions, sign_stream

    output = io.BytesIO()
    with open_key(f"p12:{pki.key_file}", pki.passphrase) as key:
        sign_stream(io.BytesIO(sample), output, key, PdfSignOptions(), "bench.pdf")
    return output.getvalue()


def main() -> None:
    from kyso.samples import decision_pdf

    started = time.perf_counter()
    header = [
        "# Kyso benchmarks",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "Extra memory is the peak RSS of the operation's process minus that of a process that",
        "only imports the same modules, divided by the file size. Third-party baselines run with",
        "pyHanko and asn1crypto as shipped (without Kyso's hex-string and X.509-name speed-ups),",
        "but with asn1crypto's length check fixed (certs/patches.py): a B-T signature would",
        "otherwise take 10 s now and then, in pyHanko as shipped too. The relay and its bare",
        "Flask baseline are both served by one process per core (`kyso serve --workers`).",
        "",
        "| figure | Kyso | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    print("\n".join(header[:3]), flush=True)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kyso-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        key, secret, env = make_pki(work, f"http://127.0.0.1:{port}")
        with kyso_server(env, port) as url:
            pki = rates.BenchPki(
                key,
                secret.read_bytes().strip(),
                work / "data" / "pki" / "ca" / "root.pem",
                f"{url}/pki/tsa",
            )
            sample = decision_pdf(work / "sample.pdf").path.read_bytes()

            sections = [
                ("PDF signing", lambda: rates.pdf_sign_rows(pki, sample)),
                ("PDF verification", lambda: rates.pdf_verify_rows(pki, _signed(pki, sample))),
                ("XML", lambda: rates.xml_rows(pki, sample_package())),
                ("batch", lambda: rates.batch_rows(pki, sample, work)),
                ("100 MiB PDF", lambda: big_pdf_rows(work, key, secret)),
                ("exchange relay", lambda: relay.relay_rows(env, work, sample)),
            ]
            for title, section in sections:
                print(f"… {title}", flush=True)
                new = section()
                print("\n".join(new), flush=True)
                rows.extend(new)
            print("… start-up", flush=True)
            signed = work / "signed.pdf"
            signed.write_bytes(_signed(pki, sample))
            section = ["", *startup.startup_section(KYSO, signed, env)]
            print("\n".join(section), flush=True)

    footer = ["", f"The whole run took {time.perf_counter() - started:.0f} s."]
    RESULTS.write_text("\n".join(header + rows + section + footer) + "\n", encoding="utf-8")
    print(f"written to {RESULTS} in {time.perf_counter() - started:.0f} s")


def startup_only() -> None:
    """The start-up section alone, on a throwaway PKI; replaced in bench/results.md."""
    from kyso.samples import decision_pdf

    with tempfile.TemporaryDirectory(prefix="kyso-bench-") as tmp:
        work = Path(tmp)
        key, secret, env = make_pki(work, "http://127.0.0.1:8080")
        root = work / "data" / "pki" / "ca" / "root.pem"
        pki = rates.BenchPki(key, secret.read_bytes().strip(), root, tsa_url="")
        signed = work / "signed.pdf"
        signed.write_bytes(_signed(pki, decision_pdf(work / "sample.pdf").path.read_bytes()))
        section = startup.startup_section(KYSO, signed, env)
    print("\n".join(section))
    document = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Kyso benchmarks\n"
    RESULTS.write_text(startup.with_section(document, section), encoding="utf-8")
    print(f"written to {RESULTS}")


def run(arguments: list[str]) -> None:
    from certs import patches

    patches.install()  # as every entry point does: the libraries as Kyso runs them
    if not arguments:
        main()
    elif arguments == ["startup"]:
        startup_only()
    else:
        raise SystemExit("usage: python -m bench [startup]")


if __name__ == "__main__":
    run(sys.argv[1:])
