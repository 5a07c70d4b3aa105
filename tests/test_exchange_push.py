"""Push delivery through the egress allow-list, in process (the relay opened with
``open_exchange`` on a cloned demo environment, its worker run one round at a time): a name
rebound to a forbidden address after registration is not contacted, redirects are not followed,
a huge answer is not read whole, https goes to the checked address under the URL's name; and a
malformed KYSO_PUSH_ALLOW is an error."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.egress import EgressPolicy, EgressRefused, IPAddress, Unresolvable
from certs.layout import PkiLayout
from certs.pki import Pki
from certs.services import PkiServices
from certs.store import CertificateStore
from exchange.auth import Principal, Role
from exchange.config import RelayConfig
from exchange.delivery import REPLY_LIMIT, pinned_poster
from exchange.service import Exchange, open_exchange
from exchange.store import deliveries
from kyso.config import Settings
from kyso.errors import InvalidRequest

from .conftest import PASSPHRASE, KysoEnv
from .exchangetools import DIEN_CHAU, NGHI_LOC, PROVINCE, VINH, ExchangeEnv, clone_env
from .exchangetools import signed_package as signed

HUGE = 64 * 1024 * 1024
PUBLIC = "93.184.216.34"  # what the name resolves to at registration (never contacted)


# --- A recording endpoint on loopback ------------------------------------------------------------


@dataclass
class Endpoint:
    """A loopback HTTP server: what it was sent, and how much of a huge answer got out."""

    server: http.server.ThreadingHTTPServer
    calls: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    huge_sent: int = 0
    huge_done: threading.Event = field(default_factory=threading.Event)
    sni: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.calls]


class _Handler(http.server.BaseHTTPRequestHandler):
    endpoint: Endpoint

    def do_POST(self) -> None:
        self._record()
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.endpoint.port}/landing")
            self.end_headers()
        elif self.path == "/huge":
            self._huge()
        else:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_GET(self) -> None:  # where a followed redirect would arrive
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.endpoint.calls.append((self.command, self.path, dict(self.headers), body))

    def _huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(HUGE))
        self.end_headers()
        chunk = b"x" * (1024 * 1024)
        try:
            while self.endpoint.huge_sent < HUGE:
                self.wfile.write(chunk)
                self.endpoint.huge_sent += len(chunk)
        except OSError:  # the relay hung up: it stopped reading
            pass
        finally:
            self.endpoint.huge_done.set()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def endpoint(tls: ssl.SSLContext | None = None) -> Iterator[Endpoint]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    found = Endpoint(server)
    handler.endpoint = found  # type: ignore[attr-defined]
    if tls is not None:
        tls.sni_callback = lambda sock, name, ctx: found.sni.append(name)  # type: ignore[assignment]
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


# --- The relay, in process ---------------------------------------------------------------------


class Resolver:
    """A resolver whose answers the test changes (DNS rebinding, simulated)."""

    def __init__(self, **names: str) -> None:
        self.names = {name.replace("_", "."): address for name, address in names.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.names:
            raise Unresolvable(f"{host} does not resolve")
        return [ipaddress.ip_address(self.names[host])]


@pytest.fixture(scope="module")
def push_env(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeEnv]:
    env, cleanup = clone_env(kyso_env, tmp_path_factory.mktemp("push"))
    yield env
    cleanup()


@pytest.fixture(scope="module")
def services(push_env: ExchangeEnv) -> Iterator[tuple[sa.Engine, PkiServices]]:
    engine = push_env.engine()
    pki = Pki(PkiLayout(push_env.pki), CertificateStore(engine))
    yield engine, PkiServices.load(pki, PASSPHRASE.encode())
    engine.dispose()


def open_relay(
    env: ExchangeEnv,
    services: tuple[sa.Engine, PkiServices],
    allow: str,
    resolver: Resolver,
) -> Exchange:
    engine, pki_services = services
    return open_exchange(
        engine,
        pki_services,
        PASSPHRASE.encode(),
        env.data,
        RelayConfig(worker=False),
        push_policy=EgressPolicy.parse(allow),
        resolver=resolver,
    )


def agency(code: str) -> Principal:
    return Principal(Role.AGENCY, code)


@contextmanager
def pushing(exchange: Exchange, code: str, url: str) -> Iterator[None]:
    """``code``'s push endpoint registered; afterwards removed and its inbox acknowledged."""
    mailbox = exchange.mailbox
    mailbox.set_push_endpoint(agency(code), url)
    try:
        yield
    finally:
        mailbox.set_push_endpoint(agency(code), None)
        for item in mailbox.inbox(agency(code), 0, 500).items:
            mailbox.ack(agency(code), item.delivery.id)


def send(exchange: Exchange, env: ExchangeEnv, recipient: str) -> str:
    accepted = exchange.relay.accept(agency(PROVINCE), signed(env, PROVINCE, [recipient]))
    return accepted.message.id


def delivery_row(exchange: Exchange, message_id: str) -> Any:
    with exchange.relay.engine.connect() as conn:
        return conn.execute(deliveries.select().where(deliveries.c.message_id == message_id)).one()


# --- Rebinding, redirects, huge answers ---------------------------------------------------------


@pytest.mark.system
def test_a_name_rebound_to_a_forbidden_address_is_not_contacted(
    push_env: ExchangeEnv, services: tuple[sa.Engine, PkiServices]
) -> None:
    resolver = Resolver(push_kyso_test=PUBLIC)
    strict = open_relay(push_env, services, "push.kyso.test", resolver)
    with endpoint() as hook:
        url = f"http://push.kyso.test:{hook.port}/hook"
        with pushing(strict, VINH, url):  # registered while the name pointed elsewhere
            resolver.names["push.kyso.test"] = "127.0.0.1"  # … and now it points here
            rebound = send(strict, push_env, VINH)
            result = strict.worker.run_once()
            assert (result.delivered, result.retried) == (0, 1)
            assert hook.calls == []  # never contacted
            row = delivery_row(strict, rebound)
            assert row.acked_at is None and row.attempts == 1
            assert "push.kyso.test resolves to 127.0.0.1" in row.last_error
            assert "loopback" in row.last_error

            # The same endpoint, with loopback allowed by the administrator: it is pushed to,
            # at the address checked, under its own name.
            lenient = open_relay(push_env, services, "push.kyso.test, 127.0.0.0/8", resolver)
            allowed = send(lenient, push_env, VINH)
            assert lenient.worker.run_once().delivered >= 1
            posted = {json.loads(body)["message_id"]: headers for _, _, headers, body in hook.calls}
            assert posted[allowed]["Host"] == f"push.kyso.test:{hook.port}"
            assert delivery_row(lenient, allowed).acked_via == "push"
    assert resolver.asked.count("push.kyso.test") >= 3  # registration, and each attempt


@pytest.mark.system
def test_a_redirect_is_not_followed(
    push_env: ExchangeEnv, services: tuple[sa.Engine, PkiServices]
) -> None:
    relay = open_relay(push_env, services, "127.0.0.0/8", Resolver())
    with endpoint() as hook, pushing(relay, NGHI_LOC, f"http://127.0.0.1:{hook.port}/moved"):
        message = send(relay, push_env, NGHI_LOC)
        result = relay.worker.run_once()
        assert (result.delivered, result.retried) == (0, 1)
        assert hook.paths() == ["/moved"]  # /landing received nothing
        row = delivery_row(relay, message)
        assert (row.acked_at, row.attempts, row.last_error) == (None, 1, "HTTP 302")


@pytest.mark.system
def test_a_huge_answer_is_not_read_whole(
    push_env: ExchangeEnv, services: tuple[sa.Engine, PkiServices]
) -> None:
    relay = open_relay(push_env, services, "127.0.0.0/8", Resolver())
    with endpoint() as hook, pushing(relay, DIEN_CHAU, f"http://127.0.0.1:{hook.port}/huge"):
        message = send(relay, push_env, DIEN_CHAU)
        assert relay.worker.run_once().delivered == 1  # a 2xx is what counts
        assert delivery_row(relay, message).acked_via == "push"
        assert hook.huge_done.wait(60), "the endpoint is still writing"
        # The relay hung up after its REPLY_LIMIT: the rest never left the endpoint (socket
        # buffers hold a few MiB at most).
        assert hook.huge_sent < HUGE // 2, f"{hook.huge_sent} of {HUGE} bytes were taken"
    assert REPLY_LIMIT == 64 * 1024


# --- https: the checked address, the URL's name ---------------------------------------------


def certificate_for(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed server certificate for ``name`` (SAN dNSName), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_goes_to_the_checked_address_under_the_urls_name(tmp_path: Path) -> None:
    cert, key = certificate_for(tmp_path, "push.kyso.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    resolver = Resolver(push_kyso_test="127.0.0.1", other_kyso_test="127.0.0.1")
    post = pinned_poster(EgressPolicy.parse("*.kyso.test, 127.0.0.0/8"), resolver, client_tls)
    with endpoint(server_tls) as hook:
        status = post(f"https://push.kyso.test:{hook.port}/hook", b"{}", {}, 10)
        assert status == 200
        assert hook.sni == ["push.kyso.test"]
        [(_, path, headers, _)] = hook.calls
        assert (path, headers["Host"]) == ("/hook", f"push.kyso.test:{hook.port}")
        # The certificate is checked against the URL's name, not the address connected to.
        with pytest.raises(ssl.SSLCertVerificationError, match=r"other\.kyso\.test"):
            post(f"https://other.kyso.test:{hook.port}/hook", b"{}", {}, 10)
        with pytest.raises(ssl.SSLCertVerificationError):
            post(f"https://127.0.0.1:{hook.port}/hook", b"{}", {}, 10)
        assert len(hook.calls) == 1
    with pytest.raises(EgressRefused):  # and the policy still applies
        post(f"https://nowhere.example:{hook.port}/hook", b"{}", {}, 10)


def test_connection_errors_are_failures_not_crashes() -> None:
    post = pinned_poster(EgressPolicy.parse("127.0.0.0/8"), Resolver())
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):  # nothing listens: the worker retries
            post(f"http://127.0.0.1:{port}/", b"{}", {}, 5)


# --- Configuration -----------------------------------------------------------------------------


def test_the_allow_list_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYSO_PUSH_ALLOW", "push.kyso.test, *.nghean.gov.vn 10.20.0.0/16")
    policy = Settings.load().push_allow
    assert policy == EgressPolicy.parse("push.kyso.test,*.nghean.gov.vn,10.20.0.0/16")
    monkeypatch.delenv("KYSO_PUSH_ALLOW")
    assert Settings.load().push_allow == EgressPolicy()  # unset: no push endpoint allowed
    # A typo must stop the start, not silently allow more or less than meant.
    monkeypatch.setenv("KYSO_PUSH_ALLOW", "push.kyso.test, 10.1.2.3/8")
    with pytest.raises(InvalidRequest, match=r"KYSO_PUSH_ALLOW: '10.1.2.3/8' is not a network"):
        Settings.load()
