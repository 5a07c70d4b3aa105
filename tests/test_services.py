"""The composition root (kyso/services.py): one object graph per process, built from the
settings (kyso/config.py, the one reader of the environment), that the app and the CLI take
their services from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import ipaddress
from pathlib import Path

import pytest

from exchange.config import RelayConfig, UnreachableResponder
from kyso.app import build_app
from kyso.config import Settings
from kyso.errors import InvalidRequest
from kyso.samples import decision_pdf
from kyso.services import Root, Services

from .conftest import PASSPHRASE, KysoEnv
from .webtools import create_token

PROVINCE, SEAL = "000.00.00.H41", "seal-000.00.00.H41"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")


@pytest.fixture(scope="module")
def settings(kyso_env: KysoEnv) -> Settings:
    """The demo's settings, whatever this process's environment; no push worker."""
    loaded = Settings.load(data=str(kyso_env.data), env={})
    return dataclasses.replace(loaded, relay=RelayConfig(worker=False))


@pytest.fixture(scope="module")
def services(settings: Settings) -> Services:
    return Root(settings, PASSPHRASE.encode).services


# --- The settings: every documented variable -------------------------------------------------


def test_every_variable_has_its_documented_default() -> None:
    settings = Settings.load(env={})
    assert (settings.data_dir, settings.pki_dir) == (Path("var"), Path("var/pki"))
    assert settings.db_url == "sqlite:///var/kyso.sqlite"
    assert settings.relay == RelayConfig()
    relay = settings.relay
    assert relay.routing_file is None and relay.max_package_bytes == 52428800
    assert relay.dead_letter_after == dt.timedelta(seconds=86400)
    assert (relay.push_base_delay, relay.push_max_delay) == (1, 3600)
    assert relay.checkpoint_interval == 60 and relay.require_signed_pdfs and relay.worker
    assert relay.client_cert_header is None and relay.metrics_networks == ()
    assert [str(n) for n in relay.client_cert_proxies] == ["127.0.0.0/8", "::1/128"]
    assert relay.auth_failures_per_minute == 60
    assert settings.pkcs11.module == "/usr/lib/softhsm/libsofthsm2.so"
    assert settings.pkcs11.pin is None and settings.stamp_font is None
    assert settings.relay_url is None and settings.secret_key is None
    assert settings.passphrase is None and settings.passphrase_file is None


def test_every_variable_is_read_into_the_settings() -> None:
    env = {
        "KYSO_DATA": "/srv/kyso",
        "KYSO_PASSPHRASE": "mật khẩu",
        "KYSO_PASSPHRASE_FILE": "/run/secrets/kyso",
        "KYSO_PKCS11_PIN": "1234",
        "KYSO_PKCS11_MODULE": "/usr/lib/pkcs11/vendor.so",
        "KYSO_STAMP_FONT": "/usr/share/fonts/noto/NotoSerif-Regular.ttf",
        "KYSO_SECRET_KEY": "session-key",
        "KYSO_URL": "https://relay.nghean.gov.vn",
        "KYSO_ROUTING": "/etc/kyso/routing.json",
        "KYSO_EXCHANGE_MAX_BYTES": "1048576",
        "KYSO_DEAD_LETTER_AFTER": "600",
        "KYSO_PUSH_BASE_DELAY": "2",
        "KYSO_PUSH_MAX_DELAY": "60",
        "KYSO_AUDIT_CHECKPOINT_EVERY": "30",
        "KYSO_REQUIRE_SIGNED_PDF": "0",
        "KYSO_CLIENT_CERT_HEADER": "X-Client-Cert",
        "KYSO_CLIENT_CERT_PROXIES": "10.0.0.5",
        "KYSO_EXCHANGE_WORKER": "off",
        "KYSO_RELAY_AUTH_FAILURES": "5",
        "KYSO_METRICS_NETWORKS": "10.9.0.0/16",
        "KYSO_UNREACHABLE_RESPONDER": "Refuse",
        "KYSO_VERIFY_BASE_DELAY": "5",
        "KYSO_VERIFY_MAX_DELAY": "300",
        "KYSO_VERIFY_GIVE_UP": "7200",
    }
    settings = Settings.load(env=env)
    assert settings.db_url == "sqlite:////srv/kyso/kyso.sqlite"
    assert settings.passphrase == "mật khẩu"
    assert settings.passphrase_file == Path("/run/secrets/kyso")
    assert (settings.pkcs11.pin, settings.pkcs11.module) == ("1234", "/usr/lib/pkcs11/vendor.so")
    assert settings.stamp_font == Path("/usr/share/fonts/noto/NotoSerif-Regular.ttf")
    assert (settings.secret_key, settings.relay_url) == ("session-key", env["KYSO_URL"])
    assert settings.relay == RelayConfig(
        max_package_bytes=1048576,
        dead_letter_after=dt.timedelta(seconds=600),
        push_base_delay=2,
        push_max_delay=60,
        checkpoint_interval=30,
        require_signed_pdfs=False,
        client_cert_header="X-Client-Cert",
        client_cert_proxies=(ipaddress.ip_network("10.0.0.5"),),
        worker=False,
        routing_file="/etc/kyso/routing.json",
        auth_failures_per_minute=5,
        metrics_networks=(ipaddress.ip_network("10.9.0.0/16"),),
        unreachable_responder=UnreachableResponder.REFUSE,
        verify_base_delay=5,
        verify_max_delay=300,
        verify_give_up=dt.timedelta(hours=2),
    )
    with pytest.raises(InvalidRequest, match="KYSO_UNREACHABLE_RESPONDER"):
        Settings.load(env={"KYSO_UNREACHABLE_RESPONDER": "deliver"})
    shown = repr(settings)  # what a log line or a traceback could show
    assert "mật khẩu" not in shown and "1234" not in shown and "session-key" not in shown


# --- The graph: built once, served as given --------------------------------------------------


def test_the_passphrase_is_asked_once_and_each_part_built_once(settings: Settings) -> None:
    asked: list[str] = []

    def passphrase() -> bytes:
        asked.append("asked")
        return PASSPHRASE.encode()

    root = Root(settings, passphrase)
    services = root.services  # the PKI services, the authenticator, the relay, signing…
    assert asked == ["asked"]
    assert root.services is services and root.engine is services.engine
    assert services.exchange.authenticator is root.authenticator
    assert services.signing.store is services.pki.store is root.certificates
    assert services.accounts.engine is services.tokens.engine is services.engine
    assert services.clock is root.clock is services.accounts.clock


class StandInPki:
    """A stand-in for the PKI services: its own CRL bytes."""

    def crl(self, ca_name: str) -> bytes:
        return f"stand-in CRL of {ca_name}".encode()


def test_the_app_serves_the_graph_it_is_given(services: Services) -> None:
    """Every blueprint answers from the Services the app was built with: a part replaced
    there is what a client gets."""
    scraper = RelayConfig(worker=False, metrics_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    given = dataclasses.replace(
        services,
        openapi={"openapi": "3.1.0", "info": {"title": "stand-in", "version": "0"}, "paths": {}},
        pki_services=StandInPki(),  # type: ignore[arg-type]
        exchange=dataclasses.replace(services.exchange, config=scraper),
    )
    client = build_app(given).test_client()
    assert client.get("/api/v1/openapi.json").json["info"]["title"] == "stand-in"
    assert client.get("/pki/crl/root.crl").data == b"stand-in CRL of root"
    metrics = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    # The app built from the graph as loaded keeps /metrics for admins and auditors.
    assert build_app(services).test_client().get("/metrics").status_code == 401


def test_the_stamp_font_of_the_settings_draws_the_servers_stamps(
    kyso_env: KysoEnv, settings: Settings, tmp_path: Path
) -> None:
    """``KYSO_STAMP_FONT`` reaches the API's visible signatures through the settings: a font
    that prints Vietnamese wrong is refused (422), not used."""
    if not DEJAVU.exists():
        pytest.skip(f"{DEJAVU} not installed")
    _, secret = create_token(kyso_env, PROVINCE, SEAL)
    wrong_font = dataclasses.replace(settings, stamp_font=DEJAVU)
    client = build_app(Root(wrong_font, PASSPHRASE.encode).services).test_client()
    pdf = decision_pdf(tmp_path / "qd.pdf").path.read_bytes()
    response = client.post(
        "/api/v1/sign/pdf",
        data={
            "file": (io.BytesIO(pdf), "qd.pdf"),
            "key": SEAL,
            "visible": "true",
            "style": "attachment",
            "document_code": "15/QĐ-UBND",
        },
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 422 and response.json["code"] == "signing-failed"
    assert "2048 units per em" in response.json["detail"]
