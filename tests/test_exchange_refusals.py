"""Requests the relay refuses before it knows who sent them: counted on /metrics, logged at most
once a minute, limited per client address (429 with Retry-After), and never written to the
audit chain (each row costs a transaction under the write lock, and anyone can send them)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from exchange.client import Credential
from exchange.errors import Refusal, TooManyRefusals
from exchange.refusals import RefusalLog, Refusals, client_key
from exchange.wire import sign_request
from kyso.app import create_app
from kyso.config import Settings
from kyso.tokens import RequestLimiter

from .conftest import PASSPHRASE, KysoEnv
from .exchangetools import HUNG_DUNG, ExchangeEnv, clone_env, count_rows

MAX_BYTES = 1000
COUNTER = "kyso_relay_refused_requests"
STRANGER = "192.0.2.10"


@pytest.fixture(scope="module")
def env(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeEnv]:
    env, cleanup = clone_env(kyso_env, tmp_path_factory.mktemp("refusals"))
    yield env
    cleanup()


def relay_app(env: ExchangeEnv, **extra: str) -> Flask:
    """The real app in this process, configured by ``env`` and ``extra`` (KYSO_* variables)."""
    settings = {
        **env.env,
        "KYSO_EXCHANGE_WORKER": "0",
        "KYSO_EXCHANGE_MAX_BYTES": str(MAX_BYTES),
        "KYSO_CLIENT_CERT_HEADER": "X-Client-Cert",
        **extra,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("KYSO_")]:
            patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, value)
        return create_app(Settings.load(), PASSPHRASE.encode())


def signed(
    credential: Credential,
    method: str,
    path: str,
    secret: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    header = sign_request(
        credential.key_id, secret or credential.secret, method, path, "", b"", timestamp
    )
    return {"Authorization": header}


def metrics(client: FlaskClient, env: ExchangeEnv) -> dict[str, float]:
    """The refusal counters by reason, read as the auditor (and parsed as Prometheus text)."""
    response = client.get("/metrics", headers=signed(env.credential("auditor"), "GET", "/metrics"))
    assert response.status_code == 200, response.json
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return counters(response.get_data(as_text=True))


def counters(text: str) -> dict[str, float]:
    [family] = [f for f in text_string_to_metric_families(text) if f.name == COUNTER]
    assert family.type == "counter"
    return {s.labels["reason"]: s.value for s in family.samples if s.name == f"{COUNTER}_total"}


def increase(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        reason: after[reason] - before[reason]
        for reason in after
        if after[reason] != before[reason]
    }


@pytest.mark.system
def test_unauthenticated_requests_are_counted_not_chained(
    env: ExchangeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    client = relay_app(env).test_client()
    agency = env.credential(HUNG_DUNG)
    valid = signed(agency, "GET", "/api/v1/inbox")
    assert client.get("/api/v1/inbox", headers=valid).status_code == 200  # used once
    unknown = Credential("ak_0000000000000000", agency.secret, "agency", HUNG_DUNG, env.url)
    old = int(time.time()) - 400
    seal = env.cert(f"seal-{HUNG_DUNG}").read_text()
    forged = signed(agency, "GET", "/api/v1/inbox", secret="guessed")
    stale = signed(agency, "GET", "/api/v1/inbox", timestamp=old)
    requests = [
        *[("GET", path, {}, "missing") for path in ("/api/v1/inbox", "/api/v1/outbox")],
        *[("GET", path, {}, "missing") for path in ("/api/v1/directory", "/api/v1/audit")],
        ("POST", "/api/v1/messages", {}, "missing"),
        *[("GET", "/api/v1/inbox", forged, "bad-signature")] * 4,
        *[("GET", "/api/v1/outbox", signed(unknown, "GET", "/api/v1/outbox"), "unknown-key")] * 4,
        *[("GET", "/api/v1/inbox", stale, "stale-timestamp")] * 3,
        *[("GET", "/api/v1/inbox", {"Authorization": "Bearer kyso_guess"}, "malformed")] * 3,
        *[("GET", "/api/v1/inbox", valid, "replayed-nonce")] * 2,
        *[("GET", "/api/v1/inbox", {"X-Client-Cert": seal.replace("\n", " ")}, "untrusted-proxy")]
        * 2,
    ]
    before_rows, before = count_rows(env, "audit_log"), metrics(client, env)
    with caplog.at_level(logging.WARNING, logger="exchange.refusals"):
        for method, path, headers, _ in requests:
            answer = client.open(
                path, method=method, headers=headers, environ_base={"REMOTE_ADDR": STRANGER}
            )
            assert answer.status_code == 401 and answer.json["code"] == "unauthenticated"
            assert answer.headers["WWW-Authenticate"].startswith("Kyso-HMAC-SHA256")
        for _ in range(2):  # refused unread: nobody can be identified without the body
            too_big = client.post(
                "/api/v1/messages",
                data=b"x" * (MAX_BYTES + 70_000),
                headers={"Content-Type": "application/xml", **valid},
                environ_base={"REMOTE_ADDR": STRANGER},
            )
            assert too_big.status_code == 413 and too_big.json["code"] == "package-too-large"
    sent = len(requests) + 2
    assert sent == 25
    assert count_rows(env, "audit_log") == before_rows  # nothing chained
    expected: dict[str, float] = {}
    for *_, reason in requests:
        expected[reason] = expected.get(reason, 0) + 1
    expected["too-large"] = 2
    counted = increase(before, metrics(client, env))
    assert counted == expected and sum(counted.values()) == sent
    # One line at the first refusal (the rest are summarised a minute later), no secrets.
    lines = [r.getMessage() for r in caplog.records if r.name == "exchange.refusals"]
    assert len(lines) == 1 and "relay refused 1 unauthenticated request" in lines[0], lines
    assert STRANGER in lines[0]
    for secret in (agency.secret, valid["Authorization"], "kyso_guess", "Signature"):
        assert secret not in caplog.text


@pytest.mark.system
def test_refusals_beyond_the_limit_get_429_but_credentials_still_work(env: ExchangeEnv) -> None:
    client = relay_app(env, KYSO_RELAY_AUTH_FAILURES="3").test_client()
    before_rows, before = count_rows(env, "audit_log"), metrics(client, env)

    def anonymous(address: str) -> int:
        answer = client.get("/api/v1/inbox", environ_base={"REMOTE_ADDR": address})
        return answer.status_code

    assert [anonymous("192.0.2.20") for _ in range(3)] == [401, 401, 401]
    limited = client.get("/api/v1/inbox", environ_base={"REMOTE_ADDR": "192.0.2.20"})
    assert limited.status_code == 429 and limited.json["code"] == "rate-limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # A request that authenticates is not held back (behind a proxy, all share one address).
    agency = signed(env.credential(HUNG_DUNG), "GET", "/api/v1/inbox")
    ok = client.get("/api/v1/inbox", headers=agency, environ_base={"REMOTE_ADDR": "192.0.2.20"})
    assert ok.status_code == 200
    assert anonymous("192.0.2.21") == 401  # another address has its own budget
    # IPv6: one client is a /64, not one of its 2^64 addresses.
    assert [anonymous(f"2001:db8:0:7::{n}") for n in range(1, 5)] == [401, 401, 401, 429]
    assert anonymous("2001:db8:0:8::1") == 401
    assert count_rows(env, "audit_log") == before_rows
    assert increase(before, metrics(client, env)) == {"missing": 8, "rate-limited": 2}


@pytest.mark.system
def test_metrics_are_for_admins_auditors_and_the_configured_networks(env: ExchangeEnv) -> None:
    client = relay_app(env).test_client()
    local = {"REMOTE_ADDR": "127.0.0.1"}
    anonymous = client.get("/metrics", environ_base=local)
    assert anonymous.status_code == 401 and anonymous.json["code"] == "unauthenticated"
    agency = signed(env.credential(HUNG_DUNG), "GET", "/metrics")
    denied = client.get("/metrics", headers=agency, environ_base=local)
    assert denied.status_code == 403 and denied.json["code"] == "forbidden"
    admin = client.get("/metrics", headers=signed(env.credential("admin"), "GET", "/metrics"))
    assert admin.status_code == 200
    assert counters(admin.get_data(as_text=True))["missing"] >= 1  # the anonymous try

    scraped = relay_app(env, KYSO_METRICS_NETWORKS="127.0.0.0/8, ::1").test_client()
    scrape = scraped.get("/metrics", environ_base=local)
    assert scrape.status_code == 200
    assert set(counters(scrape.get_data(as_text=True))) == {r.value for r in Refusal}
    assert scraped.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 401


def test_the_refusal_log_writes_at_most_one_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    log = RefusalLog(logging.getLogger("test.refusals"), every=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for n in range(10):
            log.note(Refusal.MISSING if n % 2 else Refusal.BAD_SIGNATURE, "192.0.2.7")
            now[0] += 1
        log.note(Refusal.MISSING, "192.0.2.8")
        assert len(caplog.records) == 1  # the first refusal, at once
        now[0] = 1061.0
        log.note(Refusal.BAD_SIGNATURE, "192.0.2.8")
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("relay refused 1 unauthenticated request (bad-signature 1) from 1")
    assert second == (
        "relay refused 11 unauthenticated requests in the last 61 s "
        "(bad-signature 5, missing 6) from 2 clients, most from 192.0.2.7 (9)"
    )


def test_the_limit_is_per_client_and_forgets_idle_clients() -> None:
    now = [1000.0]
    limiter = RequestLimiter(clock=lambda: now[0])
    refusals = Refusals(limiter, per_minute=2, refusal_log=RefusalLog(every=3600))
    for _ in range(2):
        refusals.refuse(Refusal.MISSING, "192.0.2.30")
    with pytest.raises(TooManyRefusals) as limited:
        refusals.refuse(Refusal.MISSING, "192.0.2.30")
    assert limited.value.retry_after == 60
    refusals.refuse(Refusal.MISSING, "::ffff:192.0.2.31")
    assert client_key("::ffff:192.0.2.31") == "192.0.2.31"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert limiter.tracked_keys() == 2
    now[0] += 61
    refusals.refuse(Refusal.MISSING, "192.0.2.30")  # the window moved on
    assert limiter.tracked_keys() == 1  # 192.0.2.31 was idle for a whole window: dropped
