"""Helpers for the web and API tests: logging in with requests, problem details, API tokens."""

from __future__ import annotations

import re

import requests

from .conftest import Demo, KysoEnv

CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


def csrf_from(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


def login(demo: Demo, username: str, password: str | None = None) -> requests.Session:
    """A session logged in as ``username``, sending its CSRF token with every request."""
    session = demo.session()
    page = session.get(f"{demo.url}/login", timeout=10)
    response = session.post(
        f"{demo.url}/login",
        data={
            "username": username,
            "password": password or demo.password,
            "csrf_token": csrf_from(page.text),
        },
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    home = session.get(f"{demo.url}/verify", timeout=10)
    session.headers["X-CSRF-Token"] = csrf_from(home.text)
    return session


def assert_problem(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] == f"urn:kyso:problem:{code}" and body["title"]
    return body


def create_token(
    env: KysoEnv, agency: str, *keys: str, rate: int = 120, cli: bool = False
) -> tuple[str, str]:
    """(token id, secret) made as `kyso tokens create` makes it: in process, or by the command
    itself (``cli``, a system test)."""
    if not cli:
        from kyso.tokens import check_token_keys

        env.services.agencies.get(agency)  # an unknown agency is refused, as by the CLI
        identities = env.services.identities
        refs = tuple(identities.resolve(key) for key in keys)
        check_token_keys(identities, agency, list(refs))
        token, secret = env.services.tokens.create(agency, refs, "test", rate)
        return token.id, secret
    args = ["tokens", "create", "--agency", agency, "--rate", str(rate), "--name", "test"]
    for key in keys:
        args += ["--key", key]
    lines = env.kyso(*args).stdout.strip().splitlines()
    return lines[0].split()[1], lines[-1]
