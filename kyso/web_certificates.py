"""The administrator's page of the certificates registered to agencies (``/admin/certificates``).

The web form of ``kyso directory certificate add`` and ``remove``: both go through
:mod:`kyso.certificate_admin`, so every change is audited the same way, with the signed-in
administrator (``web:USERNAME``) as the actor. A refused registration (not a certificate, a
CA's certificate, an unknown agency, one registered already) is said on the page, in the
page's language.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from certs.subject import SubjectInfo
from certs.truststore import TrustStoreError, parse_one_certificate
from directory import UnknownAgency
from directory.certificates import (
    CertificateIsCA,
    Registration,
    RegistrationError,
    RegistrationExists,
    Role,
    UnknownRegistration,
)

from .certificate_admin import day_end, day_start, register_certificate, remove_registration
from .services import Services, current_services
from .web import check_csrf, current_user, login_required, t

blueprint = Blueprint("certificates_web", __name__)
blueprint.before_request(check_csrf)

# An end-entity certificate is a few kilobytes; a larger upload is something else.
MAX_CERTIFICATE_BYTES = 64 * 1024


class FormError(ValueError):
    """The form's fields are wrong (``key``: the message to show, with ``values``)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Row:
    """A registration as the page lists it: with what its certificate's subject says."""

    registration: Registration
    info: SubjectInfo
    valid_now: bool


def _rows() -> list[Row]:
    now = dt.datetime.now(dt.UTC)
    return [
        Row(r, SubjectInfo.of(r.certificate), r.valid_at(now))
        for r in current_services().agency_certificates.all()
    ]


def _page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    agencies = list(current_services().agencies.directory().walk())
    form = request.form if error else {}
    html = render_template(
        "certificates.html",
        rows=_rows(),
        agencies=agencies,
        roles=[r.value for r in Role],
        error=error,
        form=form,
        max_kb=MAX_CERTIFICATE_BYTES // 1024,
    )
    return html, status


def _actor() -> str:
    user = current_user()
    assert user is not None  # login_required
    return f"web:{user.username}"


def _uploaded_certificate() -> bytes:
    file = request.files.get("certificate")
    if file is None or not file.filename:
        raise FormError("certs.error.no_file")
    data = file.stream.read(MAX_CERTIFICATE_BYTES + 1)
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise FormError("certs.error.too_large", limit=MAX_CERTIFICATE_BYTES // 1024)
    return data


def _role() -> Role:
    try:
        return Role(request.form.get("role", ""))
    except ValueError:
        raise FormError("certs.error.role") from None


def _date(field: str) -> dt.date | None:
    text = request.form.get(field, "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FormError("certs.error.date", value=text) from None


def _message(exc: Exception) -> str:
    """What the page says of a refused change, in its language."""
    if isinstance(exc, FormError):
        return t(exc.key, **exc.values)
    if isinstance(exc, TrustStoreError):
        return t("certs.error.not_certificate")
    if isinstance(exc, CertificateIsCA):
        return t("certs.error.ca")
    if isinstance(exc, UnknownAgency):
        return t("certs.error.unknown_agency", code=request.form.get("agency", ""))
    if isinstance(exc, RegistrationExists):
        return t("certs.error.duplicate")
    if isinstance(exc, UnknownRegistration):
        return t("certs.error.unknown_registration")
    return t("certs.error.invalid", detail=str(exc))


@blueprint.get("/admin/certificates")
@login_required("admin")
def certificates_page() -> tuple[str, int]:
    return _page()


@blueprint.post("/admin/certificates")
@login_required("admin")
def add_certificate() -> ResponseReturnValue:
    found = current_services()
    try:
        certificate = parse_one_certificate(_uploaded_certificate())
        registration = register_certificate(
            found.agency_certificates,
            found.audit,
            _actor(),
            request.form.get("agency", ""),
            certificate,
            _role(),
            valid_from=day_start(_date("valid_from")),
            valid_until=day_end(_date("valid_until")),
        )
    except (FormError, TrustStoreError, UnknownAgency, RegistrationError) as exc:
        return _page(_message(exc), 422)
    return redirect(url_for(".certificates_page") + f"#registration-{registration.id}", 303)


@blueprint.post("/admin/certificates/<int:registration_id>/remove")
@login_required("admin")
def remove_certificate(registration_id: int) -> ResponseReturnValue:
    found = current_services()
    try:
        remove_registration(found.agency_certificates, found.audit, _actor(), registration_id)
    except UnknownRegistration as exc:
        return _page(_message(exc), 404)
    return redirect(url_for(".certificates_page"), 303)


def init_app(app: Flask, services: Services) -> None:
    """Mount the page (its template helpers are :mod:`kyso.web`'s)."""
    app.register_blueprint(blueprint)
