"""The web pages: officers sign, auditors verify, admins look at agencies, keys and tokens.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure behind HTTPS) carrying
the user, a session id and the account's session generation, checked against the database on
every request, so that logging out, logging out everywhere and a new password end them (see
:mod:`kyso.accounts`). Every POST carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header). Pages are Vietnamese unless the English switch was used. Handlers
stay thin: parse, call one domain function, render.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import ipaddress
import secrets
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from exchange.auth import from_networks
from signer.explain import vietnam_time

from .accounts import Account
from .config import Network
from .errors import (
    AuthenticationRequired,
    CsrfFailed,
    InvalidCredentials,
    InvalidRequest,
    RateLimited,
)
from .i18n import LANGUAGES, change_text, language, term, translate
from .identities import key_name
from .report_pdf import render_report_pdf
from .services import SERVICES_KEY, Services, current_services
from .signing import PdfRequest, parse_level
from .workspace import save_upload, sign_upload

blueprint = Blueprint("web", __name__)

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_NEXT_LENGTH = 2000  # a longer "next" is no page of ours
# A request under way when its session logs out may still send a refreshed cookie of that
# session: the ended id is kept this much longer than a cookie lives.
LONGEST_REQUEST = dt.timedelta(hours=1)


# -- session, language, CSRF -------------------------------------------------------------------


def lang() -> str:
    return language(session.get("lang"))


def t(key: str, **values: object) -> str:
    return translate(lang(), key, **values)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


@blueprint.before_request
def check_csrf() -> None:
    """Refuse a POST without the session's CSRF token (every blueprint of the pages runs this)."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not expected or not hmac.compare_digest(str(expected), given):
        raise CsrfFailed("the request lacks this session's CSRF token: reload the page")


def current_user() -> Account | None:
    """The signed-in user of this request, or None (the session may have ended)."""
    if "user" not in g:
        g.user = _session_account()
    user: Account | None = g.user
    return user


def _session_account() -> Account | None:
    username = session.get("user")
    if not isinstance(username, str):
        return None
    account = current_services().accounts.session_account(
        username, session.get("generation"), session.get("sid")
    )
    if account is None:  # an ended session: the browser gets a cookie without the user
        for key in ("user", "generation", "sid"):
            session.pop(key, None)
    return account


def _start_session(account: Account) -> None:
    """A new session for ``account``: no fixation, a new CSRF token, the chosen language."""
    chosen = session.get("lang")
    session.clear()
    session.permanent = True
    session["user"] = account.username
    session["generation"] = account.session_generation
    session["sid"] = secrets.token_urlsafe(24)
    session["csrf"] = secrets.token_urlsafe(32)
    if chosen:
        session["lang"] = chosen


def _end_session() -> None:
    """Forget everything but the chosen language."""
    chosen = session.get("lang")
    session.clear()
    if chosen:
        session["lang"] = chosen


def _home(user: Account) -> str:
    if user.can("sign"):
        return url_for("web.sign_page")
    if user.can("admin"):
        return url_for("web.admin")
    return url_for("web.verify_page")


def _safe_next(target: str | None) -> str | None:
    """``target`` rebuilt from its parsed parts if it is a path on this site; else None.

    Browsers forgive a lot in a ``Location``: they drop tabs and newlines, read ``\\`` as
    ``/`` and take ``//host`` or ``///host`` for another site (and Python's URL parser, which
    Werkzeug uses on the way out, drops tabs and newlines too). So a target with a control or
    space character, a backslash, a scheme, a host or a second leading slash, in its raw or
    its percent-decoded path, is refused rather than repaired.
    """
    if not target or len(target) > MAX_NEXT_LENGTH or _unsafe_in_path(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or _unsafe_in_path(unquote(parts.path)):
        return None
    return urlunsplit(("", "", parts.path, parts.query, parts.fragment))


def _unsafe_in_path(text: str) -> bool:
    """Whether ``text`` is not a plain absolute path: it must start with exactly one slash
    and hold no backslash, control, format, space or line-separator character."""
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return True
    return any(unicodedata.category(char)[0] in "CZ" for char in text)


def client_address() -> str:
    """The address of the client that logs in: the peer's, unless the peer is one of
    ``KYSO_TRUSTED_PROXIES`` and ``KYSO_CLIENT_ADDRESS_HEADER`` names the client.

    From any other peer the header is ignored: anyone can write it, to dodge the address limit
    or to have another address locked.
    """
    settings = current_services().settings
    peer = request.remote_addr or "unknown"
    header = settings.client_address_header
    forwarded = ", ".join(request.headers.getlist(header)) if header else ""
    if not forwarded or not from_networks(peer, settings.trusted_proxies):
        return peer
    return forwarded_client(forwarded, settings.trusted_proxies) or peer


def forwarded_client(value: str, trusted: Sequence[Network]) -> str | None:
    """The client a chain of trusted proxies vouches for in an ``X-Forwarded-For`` value.

    Each proxy appends the address it was connected from, so the list is read from the right:
    the first address that is not itself a trusted proxy is the client; whatever lies to its
    left was written by the client. None if the rightmost entry is not an address.
    """
    found: str | None = None
    for hop in reversed(value.split(",")):
        try:
            address = str(ipaddress.ip_address(hop.strip()))
        except ValueError:
            break
        found = address
        if not from_networks(address, trusted):
            break
    return found


def login_required(action: str) -> Callable[[F], F]:
    """The view needs a signed-in user allowed to ``action``; pages send strangers to login."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if request.method in SAFE_METHODS and not request.path.startswith("/sign/"):
                    return redirect(url_for("web.login_form", next=request.full_path))
                raise AuthenticationRequired("log in first")
            user.require(action)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _user() -> Account:
    user = current_user()
    assert user is not None
    return user


# -- pages -------------------------------------------------------------------------------------


@blueprint.get("/")
def index() -> ResponseReturnValue:
    user = current_user()
    return redirect(_home(user) if user else url_for("web.login_form"))


@blueprint.get("/lang/<code>")
def switch_language(code: str) -> ResponseReturnValue:
    session["lang"] = language(code)
    return redirect(_safe_next(request.args.get("next")) or url_for("web.index"))


@blueprint.get("/login")
def login_form() -> str:
    next_url = _safe_next(request.args.get("next"))
    return render_template("login.html", error=None, username="", next=next_url)


@blueprint.post("/login")
def login() -> ResponseReturnValue:
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    next_url = _safe_next(request.form.get("next"))
    try:
        account = current_services().accounts.login(username, password, client_address())
    except InvalidCredentials:
        page = render_template("login.html", error=t("login.failed"), username=username,
                               next=next_url)  # fmt: skip
        return make_response(page, 401)
    except RateLimited as exc:
        message = t("login.locked", seconds=exc.retry_after)
        page = render_template("login.html", error=message, username=username, next=next_url)
        response = make_response(page, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    _start_session(account)
    return redirect(next_url or _home(account))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End this session: its cookie, even a copy of it, no longer logs anyone in."""
    session_id = session.get("sid")
    if current_user() is not None and isinstance(session_id, str):
        lifetime = current_app.permanent_session_lifetime + LONGEST_REQUEST
        current_services().accounts.end_session(session_id, lifetime)
    _end_session()
    return redirect(url_for("web.login_form"))


@blueprint.post("/logout/everywhere")
def logout_everywhere() -> ResponseReturnValue:
    """End every session of this account, in every browser."""
    user = current_user()
    if user is None:
        raise AuthenticationRequired("log in first")
    current_services().accounts.end_all_sessions(user.username)
    _end_session()
    return redirect(url_for("web.login_form"))


# -- signing -----------------------------------------------------------------------------------


@blueprint.get("/sign")
@login_required("sign")
def sign_page() -> str:
    identities = current_services().signing.allowed(_user().principal())
    return render_template("sign.html", identities=identities)


def _upload_urls(upload_id: str) -> dict[str, str]:
    return {
        "download": url_for("web.download", upload_id=upload_id),
        "page_url": url_for("web.page_png", upload_id=upload_id, page=0).replace("/0.png", "/"),
    }


@blueprint.post("/sign/uploads")
@login_required("sign")
def upload() -> Response:
    file = request.files.get("file")
    if file is None:
        raise InvalidRequest("file: a PDF file part is required")
    added = current_services().workspace.add_pdf(_user().username, file.filename, file.stream)
    return jsonify({**added.to_dict(), **_upload_urls(added.id)})


@blueprint.get("/sign/uploads/<upload_id>/pages/<int:page>.png")
@login_required("sign")
def page_png(upload_id: str, page: int) -> Response:
    png = current_services().workspace.page_png(_user().username, upload_id, page)
    return send_file(png, mimetype="image/png", max_age=0)


def _json_box(value: object) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise InvalidRequest("box: expected [x1, y1, x2, y2]")
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidRequest("box: expected four numbers") from None
    if not (x2 > x1 and y2 > y1) or any(abs(v) > 14400 for v in (x1, y1, x2, y2)):
        raise InvalidRequest("box: expected x1 < x2 and y1 < y2 within the page")
    return x1, y1, x2, y2


@blueprint.post("/sign/uploads/<upload_id>/sign")
@login_required("sign")
def sign_one(upload_id: str) -> Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidRequest("send the signing options as a JSON object")
    page = data.get("page", 1)
    if not isinstance(page, int) or isinstance(page, bool) or not 1 <= page <= 100_000:
        raise InvalidRequest("page: expected a page number")
    key = data.get("key")
    options = PdfRequest(
        level=parse_level(str(data.get("level") or "B-T")),
        visible=True,
        page=page,
        box=_json_box(data.get("box")),
    )
    found = current_services()
    signed_upload, signed = sign_upload(
        found.workspace, found.signing, _user(), upload_id, key if isinstance(key, str) else None,
        options,
    )  # fmt: skip
    result = signed.result
    return jsonify(
        {
            **signed_upload.to_dict(),
            **_upload_urls(signed_upload.id),
            "signer": result.signer.common_name,
            "field": result.field_name,
            "level": result.level.value,
            "signing_time": vietnam_time(result.signing_time),
        }
    )


@blueprint.get("/sign/uploads/<upload_id>/download")
@login_required("sign")
def download(upload_id: str) -> Response:
    found = current_services().workspace.get(_user().username, upload_id)
    return send_file(
        found.path, mimetype="application/pdf", as_attachment=True, download_name=found.name
    )


# -- verifying ---------------------------------------------------------------------------------


@blueprint.get("/verify")
@login_required("verify")
def verify_page() -> str:
    return render_template("verify.html")


def _save(file: FileStorage, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    limit = current_services().settings.max_upload_bytes
    return save_upload(file.stream, folder, file.filename or "document", limit)


@blueprint.post("/verify")
@login_required("verify")
def verify() -> ResponseReturnValue:
    document = request.files.get("document")
    if document is None or not document.filename:
        raise InvalidRequest("choose a document to verify")
    content = request.files.get("content")
    found = current_services()
    root = found.settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root, prefix="web-"))
    try:
        path = _save(document, folder / "document")
        content_path = _save(content, folder / "content") if content and content.filename else None
        report = found.signing.verify(path, content_path).to_dict()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report_id = found.workspace.save_report(_user().username, report)
    return redirect(url_for("web.report_page", report_id=report_id), 303)


@blueprint.get("/reports/<report_id>")
@login_required("verify")
def report_page(report_id: str) -> str:
    report = current_services().workspace.report(_user().username, report_id)
    return render_template("report.html", report=report, report_id=report_id)


@blueprint.get("/reports/<report_id>.json")
@login_required("verify")
def report_json(report_id: str) -> Response:
    report = current_services().workspace.report(_user().username, report_id)
    response = jsonify(report)
    name = f"{report.get('document', 'report')}.report.json"
    response.headers["Content-Disposition"] = _attachment(name)
    return response


@blueprint.get("/reports/<report_id>.pdf")
@login_required("verify")
def report_pdf(report_id: str) -> Response:
    report = current_services().workspace.report(_user().username, report_id)
    response = make_response(render_report_pdf(report, lang()))
    response.mimetype = "application/pdf"
    response.headers["Content-Disposition"] = _attachment(
        f"{report.get('document', 'report')}.report.pdf"
    )
    return response


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "ignore").decode().replace('"', "") or "report"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


# -- administration ----------------------------------------------------------------------------


@blueprint.get("/admin")
@login_required("admin")
def admin() -> str:
    found = current_services()
    return render_template(
        "admin.html",
        accounts=found.accounts.all(),
        agencies=list(found.agencies.directory().walk()),
        certificates=found.pki.store.all(),
        tokens=found.tokens.all(),
    )


@blueprint.post("/admin/tokens/<token_id>/revoke")
@login_required("admin")
def revoke_token(token_id: str) -> ResponseReturnValue:
    current_services().tokens.revoke(token_id)
    return redirect(url_for("web.admin") + "#tokens")


# -- template helpers --------------------------------------------------------------------------


def _vn_time(value: object) -> str:
    if isinstance(value, dt.datetime):
        return vietnam_time(value)
    if isinstance(value, str) and value:
        try:
            return vietnam_time(dt.datetime.fromisoformat(value))
        except ValueError:
            return value
    return "–"


def init_app(app: Flask, services: Services) -> None:
    """Mount the pages and give every template (error pages too) its helpers."""
    app.register_blueprint(blueprint)
    app.jinja_env.filters["key_name"] = key_name

    @app.context_processor
    def _helpers() -> dict[str, Any]:
        return {
            "t": t,
            "lang": lang(),
            "languages": LANGUAGES,
            "user": current_user() if SERVICES_KEY in app.extensions else None,
            "csrf_token": csrf_token,
            "vn_time": _vn_time,
            "change_text": lambda text: change_text(lang(), text),
            "term": lambda group, value: term(lang(), group, value),
        }
