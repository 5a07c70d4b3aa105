"""A bounded load test of the relay (`kyso serve` on SQLite, loopback only): first its capacity
is measured with closed-loop clients for about eight seconds, then packages are sent open-loop
at 60 % of that rate for half a minute. Every package must get a receipt (none refused, none
failed), and every receipted package must reach its recipient's inbox exactly once,
acknowledgements included.

Latency is not asserted here: on a shared CI machine a pause of the other core moves it
tenfold while nothing is lost. Its flatness over a minute of the same load is a figure of
`make bench` (bench/relay.py, the open-loop row), measured there against the relay's own
capacity in the same run."""

from __future__ import annotations

import collections
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.openloop import open_loop
from certs.keystore import open_key
from exchange.client import RelayClient
from signer import edxml, xml_signing

from .conftest import PASSPHRASE, KysoEnv, start_server
from .exchangetools import (
    DEPT,
    DIEN_CHAU,
    HUNG_DUNG,
    NGHI_LOC,
    PROVINCE,
    VINH,
    ExchangeEnv,
    clone_env,
    package_bytes,
)

# System tests (open-loop load on a `kyso serve` subprocess): only `make test` runs them.
pytestmark = [pytest.mark.system, pytest.mark.slow]

ROUTES = {  # sender: recipient, one recipient per package
    PROVINCE: NGHI_LOC,
    VINH: PROVINCE,
    DEPT: DIEN_CHAU,
    HUNG_DUNG: VINH,
}
CLIENTS = 8  # closed-loop clients measuring the capacity, as many as the server's threads
CAPACITY_SECONDS = 8.0
LOAD_SECONDS = 30.0
LOAD_FRACTION = 0.6  # of the measured capacity: nearer 100 % the queue is a random walk
MAX_RATE = 100.0  # packages per second: bounds the signing done before each phase
AHEAD = 500  # packages signed while the relay is set up: enough for 49/s in the probe
PASS = PASSPHRASE.encode()


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipient: str
    body: bytes


class Packages:
    """Signed packages made ahead of the clock, round-robin over the senders."""

    def __init__(self, env: KysoEnv, stack: ExitStack) -> None:
        self.env = env
        self.keys = {
            s: stack.enter_context(open_key(f"p12:{env.pki / 'keys' / f'seal-{s}.p12'}", PASS))
            for s in ROUTES
        }
        self.count = 0

    def make(self, n: int) -> list[Outgoing]:
        made = []
        senders = list(ROUTES)
        for _ in range(n):
            sender = senders[self.count % len(senders)]
            self.count += 1
            attachment = edxml.Attachment(
                f"cid:{self.count}",
                f"cong-van-{self.count}.txt",
                "text/plain",
                f"Công văn số {self.count}: {uuid.uuid4()}".encode() * 20,
            )
            unsigned = package_bytes(  # (its env argument is unused)
                None, sender, [ROUTES[sender]], [attachment], number=str(self.count)
            )
            made.append(
                Outgoing(sender, ROUTES[sender], xml_signing.sign_xml(unsigned, self.keys[sender]))
            )
        return made


class Sender:
    """One client per thread (a requests session is not shared), every receipt recorded."""

    def __init__(self, env: ExchangeEnv) -> None:
        self.env = env
        self.local = threading.local()
        self.lock = threading.Lock()
        self.receipts: dict[bytes, str] = {}  # package bytes → message id
        self.errors: list[str] = []

    def client(self, sender: str) -> RelayClient:
        clients = getattr(self.local, "clients", None)
        if clients is None:
            clients = self.local.clients = {}
        if sender not in clients:
            clients[sender] = self.env.client(sender)
            clients[sender].timeout = 60
        client: RelayClient = clients[sender]
        return client

    def send(self, outgoing: Outgoing) -> bool:
        try:
            sent = self.client(outgoing.sender).send(
                outgoing.body, idempotency_key=str(uuid.uuid4())
            )
        except Exception as error:  # every failure: a package without receipt
            with self.lock:
                self.errors.append(repr(error))
            return False
        with self.lock:
            self.receipts[outgoing.body] = sent.message_id
        return sent.created


def measure_capacity(sender: Sender, packages: list[Outgoing]) -> float:
    """Packages per second with ``CLIENTS`` closed-loop clients, for ``CAPACITY_SECONDS``."""
    queue: Iterator[Outgoing] = iter(packages)
    lock = threading.Lock()
    done = [0]
    deadline = time.monotonic() + CAPACITY_SECONDS

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                outgoing = next(queue, None)
            if outgoing is None:
                return
            assert sender.send(outgoing), sender.errors[-1:]
            with lock:
                done[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    return done[0] / (time.monotonic() - started)


def drain(env: ExchangeEnv, agencies: list[str]) -> dict[str, list[str]]:
    """Pull every inbox with the cursor, then acknowledge every item (from ``CLIENTS``
    threads); the message ids per agency, and each inbox must be empty afterwards."""
    received: dict[str, list[str]] = {a: [] for a in agencies}
    items: list[tuple[str, int]] = []
    for agency in agencies:
        client, cursor = env.client(agency), 0
        while True:
            page = client.inbox(after=cursor, limit=500)
            if not page["items"]:
                break
            for item in page["items"]:
                received[agency].append(item["message_id"])
                items.append((agency, item["id"]))
            cursor = page["next"]
    local = threading.local()

    def ack(item: tuple[str, int]) -> None:
        clients = getattr(local, "clients", None)
        if clients is None:
            clients = local.clients = {a: env.client(a) for a in agencies}
        clients[item[0]].ack(item[1])

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(ack, items))
    for agency in agencies:  # nothing left unacknowledged
        assert env.client(agency).inbox(after=0)["items"] == [], agency
    return received


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.timeout(240)
def test_relay_loses_nothing_under_open_loop_load_at_60_percent_of_capacity(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    began = time.monotonic()
    with ExitStack() as stack:
        packages = Packages(kyso_env, stack)  # the clone has the same seals
        with ThreadPoolExecutor(1) as background:
            ahead = background.submit(packages.make, AHEAD)
            env, cleanup = clone_env(kyso_env, tmp_path / "relay", "sqlite")
            stack.callback(cleanup)
            process = start_server(env)
            stack.callback(stop, process)
            signed = ahead.result()
        sender = Sender(env)
        warm, probe = signed[:CLIENTS], signed[CLIENTS:]
        for outgoing in warm:
            assert sender.send(outgoing), sender.errors
        capacity = measure_capacity(sender, probe)
        rate = min(capacity * LOAD_FRACTION, MAX_RATE)
        unsent = [o for o in probe if o.body not in sender.receipts]
        probe = [o for o in probe if o.body in sender.receipts]
        wanted = int(rate * LOAD_SECONDS)
        load = (unsent + packages.make(max(0, wanted - len(unsent))))[:wanted]
        print(f"{time.monotonic() - began:.1f} s: capacity {capacity:.1f}/s, load {rate:.1f}/s")

        open_loop(sender.send, load, rate)
        assert sender.errors == []
        assert all(outgoing.body in sender.receipts for outgoing in load)

        # Every receipted package is in its recipient's inbox exactly once.
        sent = [o for o in warm + probe + load if o.body in sender.receipts]
        agencies = sorted(set(ROUTES.values()))
        drained = time.monotonic()
        inboxes = drain(env, agencies)
        print(f"drained in {time.monotonic() - drained:.1f} s")
        delivered = collections.Counter((a, m) for a, ids in inboxes.items() for m in ids)
        expected = {(o.recipient, sender.receipts[o.body]) for o in sent}
        assert set(delivered) == expected
        assert set(delivered.values()) == {1}
        print(f"{len(sent)} packages delivered; {time.monotonic() - began:.0f} s in all")
        # (pytest-timeout's 240 s bounds the whole run; about 60 s on 2 cores)
