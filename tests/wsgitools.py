"""``requests`` sessions whose requests a WSGI app answers in this process.

The HTTP-level tests are written against ``requests`` (sessions, cookies, redirects, multipart
uploads); :class:`WsgiAdapter` lets the same code run against :func:`kyso.app.create_app`
through werkzeug's test client instead of a `kyso serve` subprocess on loopback. Only the
transport changes: the app sees the same WSGI requests a server would hand it.
"""

from __future__ import annotations

import datetime as dt
import http.client
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client


class WsgiAdapter(BaseAdapter):
    """A transport adapter that answers each request by calling ``app`` (a WSGI callable)."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self._client = Client(app, use_cookies=False)  # the requests session keeps the cookies

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = self._client.open(
            url.path or "/",
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method or "GET",
            headers=list(request.headers.items()),
            data=body or b"",
        )
        try:
            return _response(request, answer.status, answer.headers.items(), answer.get_data())
        finally:
            answer.close()

    def close(self) -> None:
        pass


def _response(
    request: requests.PreparedRequest, status: str, headers: Any, content: bytes
) -> requests.Response:
    """A :class:`requests.Response` as :class:`requests.adapters.HTTPAdapter` builds one."""
    message = http.client.HTTPMessage()
    for name, value in headers:
        message[name] = value
    response = requests.Response()
    code, _, reason = status.partition(" ")
    response.status_code, response.reason = int(code), reason
    response.headers = CaseInsensitiveDict(message.items())
    response._content, response._content_consumed = content, True
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response.url, response.request = request.url or "", request
    response.elapsed = dt.timedelta(0)
    # What requests reads Set-Cookie from (every one of them, unlike response.headers).
    response.raw = SimpleNamespace(_original_response=SimpleNamespace(msg=message))
    extract_cookies_to_jar(response.cookies, request, response.raw)
    return response


def session_for(app: Any, base_url: str) -> requests.Session:
    """A ``requests`` session whose requests to ``base_url`` ``app`` answers in process."""
    session = requests.Session()
    session.mount(base_url.rstrip("/") + "/", WsgiAdapter(app))
    return session
