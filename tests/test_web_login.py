"""The web login under attack: where it redirects to afterwards, how it slows guessing down,
and when a session cookie stops working."""

from __future__ import annotations

import unicodedata
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from .conftest import Demo
from .webtools import csrf_from

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
    response = post_login(requests.Session(), demo, "khoa", demo.password, next=target)
    location = assert_on_this_site(response, demo.url)
    assert location == "/verify"  # the auditor's home page, not a repaired target


def test_hostile_next_values_in_the_query_string(demo: Demo) -> None:
    raw = ("/%09/evil.example/", "//evil.example", "/%5C%5Cevil.example", "/%0d%0aSet-Cookie:x",
           "https://evil.example", "/%0aevil")  # fmt: skip
    for value in raw:
        switched = requests.get(
            f"{demo.url}/lang/en?next={value}", allow_redirects=False, timeout=10
        )
        assert assert_on_this_site(switched, demo.url) == "/", value
        page = requests.get(f"{demo.url}/login?next={value}", timeout=10)
        assert page.status_code == 200 and 'name="next"' not in page.text, value


def test_a_page_of_this_site_is_still_where_the_login_leads(demo: Demo) -> None:
    session = requests.Session()
    stranger = session.get(f"{demo.url}/verify?x=1", allow_redirects=False, timeout=10)
    assert stranger.status_code == 302
    form = session.get(urljoin(demo.url, stranger.headers["Location"]), timeout=10).text
    assert 'name="next" value="/verify?x=1"' in form
    response = post_login(session, demo, "khoa", demo.password, next="/verify?x=1")
    assert assert_on_this_site(response, demo.url) == "/verify?x=1"
    assert session.get(f"{demo.url}/verify?x=1", timeout=10).status_code == 200
