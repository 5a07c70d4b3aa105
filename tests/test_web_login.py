"""The web login under attack: where it redirects to afterwards, how it slows guessing down,
and when a session cookie stops working."""

from __future__ import annotations

import datetime as dt
import ipaddress
import unicodedata
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import Flask
from werkzeug.test import TestResponse

from certs.clock import utcnow
from kyso.app import create_app
from kyso.config import Settings
from kyso.errors import InvalidRequest

from .conftest import PASSPHRASE, Demo, KysoEnv
from .test_web_forms import add_account
from .webtools import csrf_from


@pytest.fixture(scope="session")
def demo(app_demo: Demo) -> Demo:
    """This module's HTTP tests run against the app in process (conftest's ``app_demo``)."""
    return app_demo


HOSTILE_NEXT = (
    "/\t/evil.example/",  # next=/%09/evil.example/: Python's and browsers' parsers drop the tab
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "https:evil.example",
    " //evil.example",
    "/\nevil",
    "/\r\nSet-Cookie:x",  # next=/%0d%0aSet-Cookie:x
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/\u2028/evil.example",
)


def assert_on_this_site(response: requests.Response, base: str) -> str:
    """The redirect's Location, checked to be a plain path that no browser reads as another
    site (no second leading slash, backslash, control or space character)."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "\\" not in location, location
    assert not any(unicodedata.category(c)[0] in "CZ" for c in location), repr(location)
    assert urlsplit(urljoin(base + "/", location)).netloc == urlsplit(base).netloc
    return location


def post_login(session: requests.Session, demo: Demo, username: str, password: str, **extra):
    token = csrf_from(session.get(f"{demo.url}/login", timeout=10).text)
    return session.post(
        f"{demo.url}/login",
        data={"username": username, "password": password, "csrf_token": token, **extra},
        allow_redirects=False,
        timeout=30,
    )


# -- finding 3: where the login sends you afterwards -------------------------------------------


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_never_redirects_off_the_site(demo: Demo, target: str) -> None:
    response = post_login(demo.session(), demo, "khoa", demo.password, next=target)
    location = assert_on_this_site(response, demo.url)
    assert location == "/verify"  # the auditor's home page, not a repaired target


def test_hostile_next_values_in_the_query_string(demo: Demo) -> None:
    raw = ("/%09/evil.example/", "//evil.example", "/%5C%5Cevil.example", "/%0d%0aSet-Cookie:x",
           "https://evil.example", "/%0aevil")  # fmt: skip
    for value in raw:
        switched = demo.http.get(
            f"{demo.url}/lang/en?next={value}", allow_redirects=False, timeout=10
        )
        assert assert_on_this_site(switched, demo.url) == "/", value
        page = demo.http.get(f"{demo.url}/login?next={value}", timeout=10)
        assert page.status_code == 200 and 'name="next"' not in page.text, value


def test_a_page_of_this_site_is_still_where_the_login_leads(demo: Demo) -> None:
    session = demo.session()
    stranger = session.get(f"{demo.url}/verify?x=1", allow_redirects=False, timeout=10)
    assert stranger.status_code == 302
    form = session.get(urljoin(demo.url, stranger.headers["Location"]), timeout=10).text
    assert 'name="next" value="/verify?x=1"' in form
    response = post_login(session, demo, "khoa", demo.password, next="/verify?x=1")
    assert assert_on_this_site(response, demo.url) == "/verify?x=1"
    assert session.get(f"{demo.url}/verify?x=1", timeout=10).status_code == 200


# -- finding 7: how failed logins slow guessing down -------------------------------------------


class Clock:
    """The login limits' clock, moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def web_app(env: KysoEnv, monkeypatch: pytest.MonkeyPatch, clock: Clock, **variables: str):
    """The app on the demo's database, configured by ``KYSO_*`` environment variables."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = Settings.load(data=str(env.data), pki=str(env.pki))
    return create_app(settings, PASSPHRASE.encode(), clock=clock)


def attempt(
    app: Flask, username: str, password: str, peer: str, forwarded: str | None = None
) -> TestResponse:
    """A login from the connection's address ``peer`` (through a proxy: ``forwarded``)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    token = csrf_from(client.get("/login").get_data(as_text=True))
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    form = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=form, headers=headers)


def test_a_sprayed_password_locks_the_address(demo: Demo, monkeypatch) -> None:
    app = web_app(demo.env, monkeypatch, Clock(), KYSO_LOGIN_ADDRESS_LIMIT="5")
    for n in range(4):
        assert attempt(app, f"spray{n}", "Mua-xuan-2030", "198.51.100.30").status_code == 401
    locked = attempt(app, "spray4", "Mua-xuan-2030", "198.51.100.30")
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "900"
    # locked for any username, even with its right password; other addresses are not
    assert attempt(app, "khoa", demo.password, "198.51.100.30").status_code == 429
    assert attempt(app, "khoa", demo.password, "198.51.100.31").status_code == 302


def test_a_username_that_failed_elsewhere_logs_in_after_the_wait(demo: Demo, monkeypatch) -> None:
    add_account(demo, "hanh", "auditor", "mat-khau-cua-hanh")
    clock = Clock()
    app = web_app(demo.env, monkeypatch, clock)
    for _ in range(4):
        assert attempt(app, "hanh", "sai-mat-khau", "203.0.113.10").status_code == 401
    first = attempt(app, "hanh", "sai-mat-khau", "203.0.113.10")
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    # the wait is the username's, from every address, right password or not ...
    waiting = attempt(app, "hanh", "mat-khau-cua-hanh", "198.51.100.77")
    assert waiting.status_code == 429 and 1 <= int(waiting.headers["Retry-After"]) <= 2
    # ... and short: once it is over, the right password logs in
    clock.advance(2)
    assert attempt(app, "hanh", "mat-khau-cua-hanh", "198.51.100.77").status_code == 302
    # each further failure doubles the wait, up to five minutes
    for _ in range(4):
        assert attempt(app, "hanh", "sai-mat-khau", "203.0.113.10").status_code == 401
    waits = []
    for _ in range(10):
        response = attempt(app, "hanh", "sai-mat-khau", "203.0.113.10")
        assert response.status_code == 429
        waits.append(int(response.headers["Retry-After"]))
        clock.advance(waits[-1])
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert attempt(app, "hanh", "mat-khau-cua-hanh", "198.51.100.77").status_code == 302


def test_the_proxy_header_counts_only_from_a_trusted_proxy(demo: Demo, monkeypatch) -> None:
    app = web_app(
        demo.env, monkeypatch, Clock(),
        KYSO_CLIENT_ADDRESS_HEADER="X-Forwarded-For", KYSO_TRUSTED_PROXIES="192.0.2.10",
        KYSO_LOGIN_ADDRESS_LIMIT="3",
    )  # fmt: skip
    # From a peer that is not a trusted proxy, the header is the client's own claim: ignored.
    stranger = "198.51.100.40"
    assert attempt(app, "px1", "x" * 12, stranger, "203.0.113.1").status_code == 401
    assert attempt(app, "px2", "x" * 12, stranger, "203.0.113.2").status_code == 401
    assert attempt(app, "px3", "x" * 12, stranger, "203.0.113.3").status_code == 429
    assert attempt(app, "px4", "x" * 12, stranger, "203.0.113.4").status_code == 429
    # From the trusted proxy, the header names the client: one client's lock is its own.
    proxy = "192.0.2.10"
    assert attempt(app, "px5", "x" * 12, proxy, "203.0.113.60").status_code == 401
    assert attempt(app, "px6", "x" * 12, proxy, "203.0.113.60").status_code == 401
    assert attempt(app, "px7", "x" * 12, proxy, "203.0.113.60").status_code == 429
    assert attempt(app, "khoa", demo.password, proxy, "203.0.113.61").status_code == 302
    # what the client wrote left of the proxy's entry changes nothing
    assert (
        attempt(app, "khoa", demo.password, proxy, "203.0.113.61, 203.0.113.60").status_code == 429
    )


def test_the_client_in_a_forwarded_chain() -> None:
    from kyso.web import forwarded_client

    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert forwarded_client("203.0.113.5", trusted) == "203.0.113.5"
    assert forwarded_client("1.2.3.4, 203.0.113.5", trusted) == "203.0.113.5"
    assert forwarded_client("1.2.3.4, 203.0.113.5, 10.0.0.2", trusted) == "203.0.113.5"
    assert forwarded_client("garbage, 203.0.113.5", trusted) == "203.0.113.5"
    assert forwarded_client(" 2001:DB8::1 ", trusted) == "2001:db8::1"
    assert forwarded_client("10.0.0.3, 10.0.0.2", trusted) == "10.0.0.3"
    assert forwarded_client("unknown", trusted) is None
    assert forwarded_client("", trusted) is None


def test_proxy_settings_from_the_environment(monkeypatch, tmp_path) -> None:
    defaults = Settings.load(data=str(tmp_path))
    assert defaults.client_address_header is None and defaults.login_address_limit == 50
    assert [str(n) for n in defaults.trusted_proxies] == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("KYSO_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")
    assert [str(n) for n in Settings.load(data=str(tmp_path)).trusted_proxies] == [
        "10.0.0.5/32", "10.1.0.0/16",
    ]  # fmt: skip
    monkeypatch.setenv("KYSO_TRUSTED_PROXIES", "10.0.0.300")
    with pytest.raises(InvalidRequest, match="KYSO_TRUSTED_PROXIES"):
        Settings.load(data=str(tmp_path))


# -- finding 8: sessions the server can end ----------------------------------------------------


def browser(demo: Demo, username: str, password: str) -> requests.Session:
    """A browser logged in as ``username`` (its CSRF token sent with every request)."""
    session = demo.session()
    assert post_login(session, demo, username, password).status_code == 302
    session.headers["X-CSRF-Token"] = csrf_from(session.get(f"{demo.url}/verify", timeout=10).text)
    return session


def replay(demo: Demo, cookie: str, csrf: str, method: str = "GET") -> requests.Response:
    """A request to /verify carrying a copy of a session cookie (and its CSRF token)."""
    return demo.http.request(
        method, f"{demo.url}/verify", cookies={"kyso_session": cookie},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        allow_redirects=False, timeout=10,
    )  # fmt: skip


def assert_logged_out(demo: Demo, cookie: str, csrf: str) -> None:
    page = replay(demo, cookie, csrf)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login"), page
    post = replay(demo, cookie, csrf, "POST")
    assert post.status_code == 401 and post.json()["code"] == "authentication-required"


def test_a_cookie_copied_before_logout_is_refused_after_it(demo: Demo) -> None:
    add_account(demo, "tam", "auditor", "mat-khau-cua-tam")
    first, second = (browser(demo, "tam", "mat-khau-cua-tam") for _ in range(2))
    cookie, csrf = first.cookies["kyso_session"], first.headers["X-CSRF-Token"]
    assert replay(demo, cookie, csrf).status_code == 200
    assert first.post(f"{demo.url}/logout", allow_redirects=False, timeout=10).status_code == 302
    assert_logged_out(demo, cookie, csrf)
    # logging out ends that session only: the other browser is still logged in
    assert second.get(f"{demo.url}/verify", allow_redirects=False, timeout=10).status_code == 200


def test_a_new_password_ends_every_session(demo: Demo) -> None:
    add_account(demo, "vinh", "auditor", "mat-khau-cua-vinh")
    old = browser(demo, "vinh", "mat-khau-cua-vinh")
    cookie, csrf = old.cookies["kyso_session"], old.headers["X-CSRF-Token"]
    demo.env.cli("accounts", "passwd", "vinh", "--password-stdin", input="mat-khau-moi-vinh\n")
    assert_logged_out(demo, cookie, csrf)
    assert old.get(f"{demo.url}/verify", allow_redirects=False, timeout=10).status_code == 302
    assert browser(demo, "vinh", "mat-khau-moi-vinh").get(f"{demo.url}/verify", timeout=10).ok


def test_logout_everywhere_ends_the_other_browsers_sessions(demo: Demo) -> None:
    add_account(demo, "yen", "auditor", "mat-khau-cua-yen")
    office, home = (
        browser(demo, "yen", "mat-khau-cua-yen"),
        browser(demo, "yen", "mat-khau-cua-yen"),
    )
    bystander = browser(demo, "khoa", demo.password)
    page = office.get(f"{demo.url}/verify", timeout=10).text
    assert 'id="logout-everywhere"' in page
    cookie, csrf = office.cookies["kyso_session"], office.headers["X-CSRF-Token"]
    ended = office.post(f"{demo.url}/logout/everywhere", allow_redirects=False, timeout=10)
    assert ended.status_code == 302 and ended.headers["Location"] == "/login"
    assert home.get(f"{demo.url}/verify", allow_redirects=False, timeout=10).status_code == 302
    assert_logged_out(demo, cookie, csrf)
    # other accounts keep their sessions, and the account logs in again as before
    assert bystander.get(f"{demo.url}/verify", allow_redirects=False, timeout=10).status_code == 200
    assert browser(demo, "yen", "mat-khau-cua-yen").get(f"{demo.url}/verify", timeout=10).ok
