"""Shared fixtures, by layer of the test pyramid.

- ``kyso_env``: a demo PKI built in this process by the functions `kyso pki init` calls, with
  its CRL, OCSP and TSA answered in process (:attr:`KysoEnv.pki_services`): signer, CMS, XML
  and stamp tests need no subprocess.
- ``app_demo``: the Flask app of :func:`kyso.app.create_app` on that PKI with the demo
  accounts, reached by ``requests`` through werkzeug's test client (``tests/wsgitools.py``):
  the HTTP-level tests. A module whose HTTP tests run so overrides ``demo`` with it.
- ``server`` / ``demo`` (``served_demo``): `kyso serve` as a subprocess on loopback, for the
  system tests (``@pytest.mark.system``: crash, load, browser, bombs, CLI); every test that
  uses ``server`` is marked so (:func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import http.cookiejar
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from certs import patches

if TYPE_CHECKING:
    from certs.services import PkiServices
    from kyso.config import Settings
    from kyso.services import Root

# As every entry point does: the library patches, before any test reads a document.
patches.install()

KYSO = str(Path(sys.executable).parent / "kyso")
PASSPHRASE = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KysoEnv:
    """A data directory with its own database, PKI and environment for subprocesses."""

    data: Path
    port: int

    @property
    def pki(self) -> Path:
        return self.data / "pki"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KYSO_")}
        env.update(KYSO_DATA=str(self.data), KYSO_PASSPHRASE=PASSPHRASE)
        return env

    def kyso(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        env = kwargs.pop("env", None) or self.env
        result = subprocess.run(
            [KYSO, *args], env=env, capture_output=True, text=True, timeout=120, **kwargs
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kyso {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def cli(self, *args: str, input: str | None = None) -> None:
        """`kyso <args>` run in this process by click's test runner: the command's own code on
        :attr:`env`'s settings, without the cost of a subprocess (for setting up a test; a test
        of the command line itself runs :meth:`kyso`)."""
        from click.testing import CliRunner

        from kyso.cli import main

        variables = {"KYSO_DATA": str(self.data), "KYSO_PASSPHRASE": PASSPHRASE, "KYSO_DB": None}
        result = CliRunner().invoke(main, list(args), input=input, env=variables)
        if result.exit_code != 0:
            raise AssertionError(f"kyso {' '.join(args)} failed: {result.output}") from (
                result.exception
            )

    @property
    def settings(self) -> Settings:
        """The settings a `kyso` subprocess of :attr:`env` would load (SQLite in the data dir)."""
        from kyso.config import Settings

        return Settings.load(env=self.env)

    @cached_property
    def services(self) -> Root:
        """Kyso's object graph on :attr:`settings` in this process (what a `kyso` command
        builds): the in-process layers set up what they test through it."""
        from kyso.services import Root

        return Root(self.settings, PASSPHRASE.encode)

    @cached_property
    def pki_services(self) -> PkiServices:
        """The PKI's CRLs, OCSP responder and TSA, open in this process (what `kyso serve`
        answers under /pki): tests sign and verify against them without HTTP."""
        return self.services.pki_services

    def issue_person(
        self, agency: str, name: str, title: str = "", key_type: str = "rsa2048"
    ) -> str:
        """What `kyso pki issue person` does, in process: the new certificate's serial (hex)."""
        from certs.agencies import person_name, person_subject
        from certs.profiles import Profile
        from certs.store import serial_hex
        from directory import Officer
        from directory.store import AgencyStore

        pki = self.pki_services.pki
        officer = Officer(name, title, agency)
        subject = person_subject(officer, AgencyStore(pki.store.engine).get(agency))
        issued = pki.issue(
            Profile.PERSON,
            subject,
            PASSPHRASE.encode(),
            name=person_name(officer),
            key_type=key_type,
        )
        return serial_hex(issued.certificate.serial_number)

    def revoke(self, serial: str, reason: str = "keyCompromise") -> None:
        """What `kyso pki revoke` does to the PKI, in process (a new CRL published)."""
        from certs.pki import parse_reason
        from certs.store import parse_serial

        pki = self.pki_services.pki
        pki.revoke(parse_serial(serial), parse_reason(reason), PASSPHRASE.encode())

    def cert(self, name: str) -> Path:
        return self.pki / "certs" / f"{name}.pem"

    @property
    def root(self) -> Path:
        return self.pki / "ca" / "root.pem"

    @property
    def issuing(self) -> Path:
        return self.pki / "ca" / "issuing.pem"


def init_pki(env: KysoEnv) -> None:
    """What `kyso pki init --base-url <env.url>` does (the demo directory loaded, the demo PKI
    created), called in this process: the CLI command itself is tested in test_cli."""
    from directory import load_directory
    from kyso.demo.pki import init_demo_pki

    init_demo_pki(
        env.services, env.pki, env.url, PASSPHRASE.encode(), load_directory(None), "cli:tests"
    )


@pytest.fixture(scope="session")
def kyso_env(tmp_path_factory: pytest.TempPathFactory) -> KysoEnv:
    """A demo PKI built in process, its URLs pointing at a port reserved for it (with xdist,
    each worker has its own, in its own temporary directory)."""
    env = KysoEnv(tmp_path_factory.mktemp("kyso"), free_port())
    init_pki(env)
    return env


@dataclass
class Server:
    env: KysoEnv
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return self.env.url


def start_server(env: KysoEnv, *options: str, timeout: float = 30) -> subprocess.Popen:
    """`kyso serve` with ``options``, in a process group of its own (with ``--workers``, a
    crash test kills the whole group, as a power cut would)."""
    with open(env.data / f"server-{env.port}.log", "ab") as log:  # the child keeps its copy
        process = subprocess.Popen(
            [KYSO, "serve", "--port", str(env.port), *options],
            env=env.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {(env.data / f'server-{env.port}.log').read_text()}"
            )
        try:
            if requests.get(f"{env.url}/healthz", timeout=1).ok:
                return process
        except (requests.ConnectionError, requests.Timeout):  # workers still starting
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start in time")


@pytest.fixture(scope="session")
def server(kyso_env: KysoEnv) -> Iterator[Server]:
    """`kyso serve` as a subprocess on the reserved loopback port."""
    process = start_server(kyso_env)
    yield Server(kyso_env, process)
    process.terminate()
    process.wait(timeout=10)


@dataclass
class Demo:
    """A Kyso serving the demo accounts (one password) and the province's API token: a
    `kyso serve` subprocess (``demo``) or the app in this process (``app_demo``). Tests reach
    either at :attr:`url` through :attr:`http` or a new :meth:`session`."""

    env: KysoEnv
    password: str
    token: str
    app: Any = None  # the Flask app answering in process; None: the subprocess on loopback
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.env.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def session(self) -> requests.Session:
        """A new ``requests`` session (its own cookies) to this Kyso."""
        if self.app is None:
            return requests.Session()
        from .wsgitools import session_for

        return session_for(self.app, self.url)

    @cached_property
    def http(self) -> requests.Session:
        """For one-off requests (``demo.http.get(...)``, as ``requests.get``): a session that
        keeps no cookie, so no request carries what an earlier one was given."""
        session = self.session()
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        return session


def demo_secrets(env: KysoEnv) -> tuple[str, str]:
    """The demo accounts' password and the province's API token that `kyso demo accounts`
    wrote."""
    secrets_dir = env.data / "secrets"
    return (
        (secrets_dir / "demo-password").read_text().strip(),
        (secrets_dir / "demo-api-token").read_text().strip(),
    )


@pytest.fixture(scope="session")
def served_demo(server: Server) -> Demo:
    """`kyso demo accounts` run against the session's database while the server runs."""
    env = server.env
    env.kyso("demo", "accounts")
    return Demo(env, *demo_secrets(env), process=server.process)


@pytest.fixture(scope="session")
def demo(served_demo: Demo) -> Demo:
    """The running `kyso serve` with the demo accounts (a module whose HTTP tests run in
    process overrides this with ``app_demo``; its system tests then ask for ``served_demo``)."""
    return served_demo


@pytest.fixture(scope="session")
def app_demo(kyso_env: KysoEnv) -> Demo:
    """The app `kyso serve` would serve (:func:`kyso.app.create_app` on the session's PKI and
    database), with the demo accounts, answering in this process: the HTTP-level tests."""
    from kyso.app import create_app
    from kyso.demo_accounts import create_demo_accounts
    from kyso.services import Root

    root = Root(kyso_env.settings, PASSPHRASE.encode)
    create_demo_accounts(root.accounts, root.tokens, root.identities, kyso_env.settings.secrets_dir)
    root.engine.dispose()
    app = create_app(kyso_env.settings, PASSPHRASE.encode())
    return Demo(kyso_env, *demo_secrets(kyso_env), app=app)


def xmlsec1_verify(env: KysoEnv, path: Path) -> subprocess.CompletedProcess:
    """xmlsec1's verdict on an XML signature, trusting the demo root (an independent check)."""
    return subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(env.root), "--untrusted-pem",
         str(env.issuing), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def self_signed_certificate(directory: Path, common_name: str) -> Path:
    """A certificate from no CA Kyso knows (its key lies next to it), made by openssl."""
    certificate = directory / f"{common_name.replace(' ', '-')}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(certificate.with_suffix(".key")), "-out", str(certificate), "-subj",
         f"/CN={common_name}", "-days", "1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``system`` every test that needs the `kyso serve` subprocess (``server``, directly
    or through ``demo``), whether or not its module says so. A module whose HTTP tests run in
    process overrides ``demo`` with one that returns ``app_demo``."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.system)
