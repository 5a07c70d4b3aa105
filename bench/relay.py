"""Exchange relay figures: signed packages accepted per second and their latency, with 8
concurrent clients, on SQLite and on PostgreSQL, next to a bare Flask endpoint (served the
same way: one process per core, as many threads) that only does the durable INSERT of the
same bytes.

A package carries one signed PDF; the relay verifies the package's XAdES signature and the
PDF's, fsyncs both, signs its receipt (B-T, in-process TSA) and commits. The packages are
signed before the clock starts: signing is the client's cost, not the relay's.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from .openloop import open_loop, thirds, windows
from .ports import free_port
from .rates import Row, row

KYSO = Path(sys.executable).parent / "kyso"
CLIENTS = 8
# One server process per core (Python runs one thread at a time per process), with as many
# threads in all as there are clients.
WORKERS = int(os.environ.get("KYSO_BENCH_RELAY_WORKERS", str(os.cpu_count() or 1)))
THREADS = -(-CLIENTS // WORKERS)
SECONDS = float(os.environ.get("KYSO_BENCH_RELAY_SECONDS", "10"))
PACKAGES = int(os.environ.get("KYSO_BENCH_RELAY_PACKAGES", "800"))
PG_ADMIN_URL = os.environ.get("KYSO_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FLAT_SECONDS = float(os.environ.get("KYSO_BENCH_RELAY_FLAT_SECONDS", "60"))
FLAT_LOAD = 0.6  # of the closed-loop rate: nearer 100 % an open-loop queue is a random walk
SENDER, RECIPIENT = "000.00.00.H41", "000.00.21.H41"  # the province, Vinh


@dataclass
class Run:
    """What ``CLIENTS`` closed-loop clients got done."""

    done: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def closed_loop(
    send: Callable[[int, bytes], None], bodies: list[bytes], seconds: float, repeat: bool = False
) -> Run:
    """``CLIENTS`` threads send the next body as soon as their previous one is answered, for
    ``seconds`` or until the bodies run out (after one warm-up request per client); with
    ``repeat``, the bodies are sent again and again."""
    lock = threading.Lock()
    queue = itertools.cycle(bodies) if repeat else iter(bodies)
    latencies: list[float] = []
    warm = threading.Barrier(CLIENTS + 1)
    deadline = [0.0]

    failures: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with lock:
                first = next(queue)
            send(n, first)
            warm.wait()
            while True:
                with lock:
                    body = next(queue, None)
                if body is None or time.perf_counter() > deadline[0]:
                    return
                start = time.perf_counter()
                send(n, body)
                with lock:
                    latencies.append(time.perf_counter() - start)
        except threading.BrokenBarrierError:
            return  # another client failed: its error is reported
        except BaseException as exc:  # reported below, after every client stopped
            failures.append(exc)
            warm.abort()
            deadline[0] = 0.0

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + 3600
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed, see below
        warm.wait()
    start = time.perf_counter()
    if not failures:
        deadline[0] = start + seconds
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
    return Run(len(latencies), time.perf_counter() - start, latencies)


# --- Environments ---------------------------------------------------------------------------------


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # workers still starting
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[str]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards: its URL without a driver."""
    import sqlalchemy as sa

    name = f"kyso_bench_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def copy_directory(source_url: str, target_url: str) -> None:
    """The agencies and certificates of the bench PKI's database, into a new database."""
    from kyso.db import copy_pki_and_directory, make_engine

    source, target = make_engine(source_url), make_engine(target_url)
    copy_pki_and_directory(source, target)
    source.dispose()
    target.dispose()


def relay_env(base: dict[str, str], work: Path, db_url: str | None, port: int) -> dict[str, str]:
    """A relay data directory with the bench PKI, its directory and agency credentials."""
    source = Path(base["KYSO_DATA"])
    shutil.copytree(source / "pki", work / "pki")
    if db_url is None:
        db_url = f"sqlite:///{work / 'kyso.sqlite'}"
        with (
            sqlite3.connect(source / "kyso.sqlite") as src,
            sqlite3.connect(work / "kyso.sqlite") as dst,
        ):
            src.backup(dst)
    else:
        copy_directory(f"sqlite:///{source / 'kyso.sqlite'}", db_url)
    env = {k: v for k, v in base.items() if not k.startswith("KYSO_")}
    env.update(
        KYSO_DATA=str(work),
        KYSO_PASSPHRASE=base["KYSO_PASSPHRASE"],
        KYSO_DB=db_url,
        KYSO_URL=f"http://127.0.0.1:{port}",
    )
    subprocess.run(
        [str(KYSO), "demo", "init", "--if-missing"], env=env, check=True, capture_output=True
    )
    return env


# --- Packages -------------------------------------------------------------------------------------


def signed_packages(
    base: dict[str, str], sample_pdf: bytes, count: int, first: int = 0
) -> list[bytes]:
    """``count`` packages from the province to Vinh, each with its own signed PDF, numbered
    from ``first``."""
    from certs.keystore import open_key
    from exchange.client import build_package
    from signer import edxml, xml_signing
    from signer.pdf import PdfSignOptions, sign_stream

    seal = Path(base["KYSO_DATA"]) / "pki" / "keys" / f"seal-{SENDER}.p12"
    passphrase = base["KYSO_PASSPHRASE"].encode()
    sender = edxml.Organization(SENDER, "UBND tỉnh Nghệ An")
    recipient = edxml.Organization(RECIPIENT, "UBND thành phố Vinh")
    packages = []
    with open_key(f"p12:{seal}", passphrase) as key:
        for n in range(first, first + count):
            pdf = io.BytesIO()
            sign_stream(io.BytesIO(sample_pdf), pdf, key, PdfSignOptions(), f"qd-{n}.pdf")
            attachment = edxml.Attachment(
                f"cid:qd-{n}", f"quyet-dinh-{n}.pdf", "application/pdf", pdf.getvalue()
            )
            unsigned = build_package(
                sender,
                [recipient],
                [attachment],
                subject="Về việc phê duyệt kế hoạch chuyển đổi số năm 2027",
                number=str(n + 1),
                notation="QĐ-UBND",
                signer_name="Nguyễn Văn An",
            )
            packages.append(xml_signing.sign_xml(unsigned, key))
    return packages


# --- Runs -----------------------------------------------------------------------------------------


def relay_run(env: dict[str, str], port: int, packages: list[bytes], log: Path) -> Run:
    from exchange.client import Credential, RelayClient

    url = f"http://127.0.0.1:{port}"
    credential = Credential.load(Path(env["KYSO_DATA"]) / "secrets" / f"agency-{SENDER}.json")
    clients = [RelayClient(credential, url, timeout=60) for _ in range(CLIENTS)]
    command = [str(KYSO), "serve", "--port", str(port), "--threads", str(THREADS)]
    command += ["--workers", str(WORKERS)]

    def send(n: int, body: bytes) -> None:
        sent = clients[n].send(body, idempotency_key=str(uuid.uuid4()), multipart=False)
        assert sent.created, "a package was not stored"

    with server(command, env, url, log):
        return closed_loop(send, packages, SECONDS)


def flatness_run(
    env: dict[str, str], port: int, packages: list[bytes], log: Path, rate: float
) -> list[float]:
    """The latency of each package sent open-loop at ``rate`` (for at most ``FLAT_SECONDS``)."""
    from exchange.client import Credential, RelayClient

    url = f"http://127.0.0.1:{port}"
    credential = Credential.load(Path(env["KYSO_DATA"]) / "secrets" / f"agency-{SENDER}.json")
    local = threading.local()
    command = [str(KYSO), "serve", "--port", str(port), "--threads", str(THREADS)]
    command += ["--workers", str(WORKERS)]

    def send(body: bytes) -> None:
        if not hasattr(local, "client"):
            local.client = RelayClient(credential, url, timeout=60)
        sent = local.client.send(body, idempotency_key=str(uuid.uuid4()), multipart=False)
        assert sent.created, "a package was not stored"

    load = packages[: max(1, int(rate * FLAT_SECONDS))]
    with server(command, env, url, log):
        return open_loop(send, load, rate)


def flatness_row(latencies: list[float], rate: float) -> Row:
    first, last = thirds(latencies)
    seconds = len(latencies) / rate
    print("\n".join(f"    {line}" for line in windows(latencies, rate)), flush=True)
    return latency_row(
        f"Relay send, SQLite, open loop at {rate:.0f}/s ({FLAT_LOAD:.0%} of the rate above) "
        f"for {seconds:.0f} s: p90 of the last third",
        last * 1000,
        "p90 of the first third",
        first * 1000,
    )


def bare_run(db_url: str, port: int, packages: list[bytes], log: Path) -> Run:
    url = f"http://127.0.0.1:{port}"
    sessions = [requests.Session() for _ in range(CLIENTS)]
    command = [
        sys.executable,
        "-m",
        "bench.bare",
        "--port",
        str(port),
        "--db",
        db_url,
        "--threads",
        str(THREADS),
        "--workers",
        str(WORKERS),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def send(n: int, body: bytes) -> None:
        response = sessions[n].post(
            f"{url}/ingest", data=body, headers={"Content-Type": "application/xml"}, timeout=60
        )
        assert response.status_code == 201, response.text

    with server(command, env, url, log):
        return closed_loop(send, packages, SECONDS, repeat=True)


def latency_row(figure: str, kyso: float, baseline_name: str, baseline: float) -> Row:
    return (
        f"| {figure} | {kyso:,.1f} ms | {baseline_name} {baseline:,.1f} ms | "
        f"{kyso / baseline:.2f}× |"
    )


def relay_rows(base: dict[str, str], work: Path, sample_pdf: bytes) -> list[Row]:
    """The figures, for ``base`` (the environment of the bench PKI, `kyso pki init` done)."""
    started = time.perf_counter()
    packages = signed_packages(base, sample_pdf, PACKAGES)
    size = sum(map(len, packages)) / len(packages) / 1024
    print(f"  {len(packages)} packages signed ({size:.0f} KiB each)", flush=True)
    print(f"  in {time.perf_counter() - started:.1f} s", flush=True)
    rows: list[Row] = []
    for backend in ("SQLite", "PostgreSQL"):
        root = work / f"relay-{backend.lower()}"
        root.mkdir()
        with contextlib.ExitStack() as stack:
            pg = None if backend == "SQLite" else stack.enter_context(pg_database())
            port = free_port()
            env = relay_env(base, root, pg, port)
            relay = relay_run(env, port, packages, root / "relay.log")
            print(
                f"  {backend}: relay {relay.done} in {relay.seconds:.1f} s = {relay.rate:.1f}/s",
                flush=True,
            )
            if pg is None:  # in a fresh database: the latency trend over a growing one
                flat_root = work / "relay-flat"
                flat_root.mkdir()
                flat_port = free_port()
                flat_env = relay_env(base, flat_root, None, flat_port)
                rate = relay.rate * FLAT_LOAD
                more = max(0, int(rate * FLAT_SECONDS) - len(packages))
                packages += signed_packages(base, sample_pdf, more, first=len(packages))
                flat = flatness_run(flat_env, flat_port, packages, flat_root / "relay.log", rate)
            bare_db = f"sqlite:///{root / 'bare.sqlite'}" if pg is None else pg
            bare = bare_run(bare_db, free_port(), packages, root / "bare.log")
            print(
                f"  {backend}: bare Flask {bare.done} in {bare.seconds:.1f} s = {bare.rate:.1f}/s",
                flush=True,
            )
        baseline = f"bare Flask INSERT ({backend})"
        rows += [
            row(
                f"Relay send, {backend}, {CLIENTS} clients: packages accepted",
                relay.rate,
                baseline,
                bare.rate,
            ),
            latency_row(
                f"Relay send, {backend}, {CLIENTS} clients: p50 latency",
                relay.percentile(50),
                baseline,
                bare.percentile(50),
            ),
            latency_row(
                f"Relay send, {backend}, {CLIENTS} clients: p99 latency",
                relay.percentile(99),
                baseline,
                bare.percentile(99),
            ),
        ]
        if backend == "SQLite":
            rows.append(flatness_row(flat, relay.rate * FLAT_LOAD))
    return rows
