"""The ``/api/v1`` blueprint: signing for agency systems, verification for anyone.

Each handler parses the request, calls one function of :class:`kyso.signing.SigningService`
and turns the result into a response; errors are domain exceptions, answered as problem
details by :mod:`kyso.problems`. The contract is ``schemas/openapi.yaml``.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request, send_file
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import UnsupportedMediaType

from exchange.identity import Principal
from signer.levels import Level
from signer.report import CertificateInfo

from .errors import AuthenticationRequired, InvalidRequest
from .openapi import form_fields, operations
from .services import Services, current_services
from .signing import STYLES, XML_CMS_LEVELS, PdfRequest, Signed, parse_box, parse_level, parse_time
from .workspace import safe_name, save_upload

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_FIELD_LENGTH = 500
LEVELS = tuple(level.value for level in Level)
COPY_TYPES = ("SAO Y", "SAO LỤC", "TRÍCH SAO")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# -- request parsing ---------------------------------------------------------------------------


def _token(required: bool) -> Principal | None:
    """The caller's token (checked and counted against its rate), or None if none was sent."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        if required:
            raise AuthenticationRequired("send the API token as Authorization: Bearer kyso_…")
        return None
    found = current_services()
    principal = found.tokens.principal(header)
    found.limiter.hit(f"token:{principal.credential_id}", principal.rate_per_minute or 1)
    return principal


def _anonymous_rate() -> None:
    found = current_services()
    client = request.remote_addr or "unknown"
    found.limiter.hit(f"ip:{client}", found.settings.verify_rate_per_minute)


def _form() -> tuple[MultiDict[str, str], MultiDict[str, FileStorage]]:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send the request as multipart/form-data")
    return request.form, request.files


def _file(files: MultiDict[str, FileStorage], name: str) -> FileStorage:
    found = files.get(name)
    if found is None:
        raise InvalidRequest(f"{name}: a file part is required")
    return found


def _text(form: MultiDict[str, str], name: str, limit: int = MAX_FIELD_LENGTH) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if len(value) > limit:
        raise InvalidRequest(f"{name}: at most {limit} characters")
    if "\x00" in value:
        raise InvalidRequest(f"{name}: contains a NUL character")
    return value


def _choice(form: MultiDict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """An optional field with a fixed set of values; an empty value is not one of them."""
    value = form.get(name)
    if value is None:
        return None
    if value not in choices:
        raise InvalidRequest(f"{name}: one of {', '.join(choices)}")
    return value


def _bool(form: MultiDict[str, str], name: str) -> bool:
    if name not in form:
        return False
    value = (form.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidRequest(f"{name}: expected true or false")


def _int(form: MultiDict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = (form.get(name) or "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: expected an integer") from None
    if not low <= number <= high:
        raise InvalidRequest(f"{name}: must be between {low} and {high}")
    return number


def _workdir() -> Path:
    root = current_services().settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix="api-"))


def _save(upload: FileStorage, folder: Path, default: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    limit = current_services().settings.max_upload_bytes
    return save_upload(upload.stream, folder, upload.filename or default, limit)


# -- responses ---------------------------------------------------------------------------------


def _wants_json(media_type: str) -> bool:
    best = request.accept_mimetypes.best_match([media_type, "application/json"])
    return best == "application/json"


def _meta_headers(signer: CertificateInfo, level: Level, signing_time: str) -> dict[str, str]:
    return {
        "X-Kyso-Signer-Serial": signer.serial,
        "X-Kyso-Level": level.value,
        "X-Kyso-Signing-Time": signing_time,
        "Cache-Control": "no-store",
    }


def _json_document(data: bytes, filename: str, media_type: str, signed: dict[str, Any]) -> Response:
    import hashlib

    body = {
        "filename": filename,
        "media_type": media_type,
        "document": base64.b64encode(data).decode("ascii"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **signed,
    }
    return jsonify(body)


def _signer_dict(signer: CertificateInfo) -> dict[str, Any]:
    return {
        "subject": signer.subject,
        "common_name": signer.common_name,
        "organization": signer.organization,
        "agency_code": signer.agency_code,
        "issuer": signer.issuer,
        "serial": signer.serial,
        "not_before": signer.not_before.isoformat(),
        "not_after": signer.not_after.isoformat(),
        "sha256": signer.sha256,
    }


def _blob_response(signed: Signed, filename: str, media_type: str) -> Response:
    time = signed.signing_time.isoformat()
    if _wants_json(media_type):
        response = _json_document(
            signed.data,
            filename,
            media_type,
            {
                "signer": _signer_dict(signed.signer),
                "key": signed.key_name,
                "level": signed.level.value,
                "field": None,
                "signing_time": time,
            },
        )
    else:
        response = Response(signed.data, mimetype=media_type)
        response.headers["Content-Disposition"] = _disposition(filename)
    response.headers.update(_meta_headers(signed.signer, signed.level, time))
    return response


def _disposition(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "ignore").decode() or "document"
    ascii_name = ascii_name.replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _signed_name(name: str, suffix: str, replace_extension: bool = True) -> str:
    stem = name.rsplit(".", 1)[0] if replace_extension and "." in name else name
    return f"{stem}{suffix}"


# -- operations --------------------------------------------------------------------------------


@blueprint.post("/sign/pdf")
def sign_pdf() -> Response:
    token = _token(required=True)
    assert token is not None
    form, files = _form()
    upload = _file(files, "file")
    options = PdfRequest(
        level=parse_level(_choice(form, "level", LEVELS)),
        visible=_bool(form, "visible"),
        style=_choice(form, "style", STYLES),
        page=_int(form, "page", 1, 1, 100_000),
        box=parse_box(_text(form, "box", 200)),
        document_code=_text(form, "document_code", 200),
        copy_type=_choice(form, "copy_type", COPY_TYPES),
        text_block=_bool(form, "text_block"),
        certify=_bool(form, "certify"),
        reason=_text(form, "reason"),
        location=_text(form, "location"),
        field_name=_text(form, "field", 100),
    )
    if options.field_name and not all(c.isascii() and (c.isalnum() or c in "_.-")
                                       for c in options.field_name):  # fmt: skip
        raise InvalidRequest("field: letters, digits, '_', '.' and '-' only")
    folder = _workdir()
    try:
        source = _save(upload, folder / "in", "document.pdf")
        output = folder / "signed.pdf"
        signed = current_services().signing.sign_pdf(
            token, _text(form, "key"), source, output, options
        )
        result = signed.result
        filename = _signed_name(safe_name(upload.filename, "document.pdf"), "-signed.pdf")
        time = result.signing_time.isoformat()
        if _wants_json("application/pdf"):
            response = _json_document(
                output.read_bytes(),
                filename,
                "application/pdf",
                {
                    "signer": _signer_dict(result.signer),
                    "key": signed.key_name,
                    "level": result.level.value,
                    "field": result.field_name,
                    "signing_time": time,
                },
            )
            shutil.rmtree(folder, ignore_errors=True)
        else:
            response = send_file(output, mimetype="application/pdf", max_age=0)
            response.headers["Content-Disposition"] = _disposition(filename)
            response.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    response.headers.update(_meta_headers(result.signer, result.level, time))
    response.headers["X-Kyso-Field"] = result.field_name
    return response


def _xml_cms_request() -> tuple[Principal, str | None, FileStorage, Level]:
    """The token, key name, uploaded file and level of a /sign/xml or /sign/cms request."""
    token = _token(required=True)
    assert token is not None
    form, files = _form()
    upload = _file(files, "file")
    level = parse_level(_choice(form, "level", ("B-B", "B-T")), XML_CMS_LEVELS)
    return token, _text(form, "key"), upload, level


@blueprint.post("/sign/xml")
def sign_xml() -> Response:
    token, key, upload, level = _xml_cms_request()
    data = upload.stream.read(current_services().settings.max_upload_bytes + 1)
    signed = current_services().signing.sign_xml(token, key, data, level)
    name = safe_name(upload.filename, "document.xml")
    return _blob_response(signed, _signed_name(name, "-signed.xml"), "application/xml")


@blueprint.post("/sign/cms")
def sign_cms() -> Response:
    token, key, upload, level = _xml_cms_request()
    signed = current_services().signing.sign_cms(token, key, upload.stream, level)
    name = safe_name(upload.filename, "document")
    return _blob_response(
        signed, _signed_name(name, ".p7s", replace_extension=False), "application/pkcs7-signature"
    )


@blueprint.post("/verify")
def verify() -> Response:
    if _token(required=False) is None:
        _anonymous_rate()
    form, files = _form()
    document = _file(files, "file")
    content = files.get("content")
    offline = _bool(form, "offline")
    at = parse_time(_text(form, "at", 64))
    folder = _workdir()
    try:
        path = _save(document, folder / "document", "document")
        content_path = _save(content, folder / "content", "content") if content else None
        report = current_services().signing.verify(path, content_path, offline, at)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    response = jsonify(report.to_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/keys")
def keys() -> Response:
    token = _token(required=True)
    assert token is not None
    identities = current_services().signing.allowed(token)
    return jsonify(
        token=token.credential_id,
        agency_code=token.agency_code,
        rate_per_minute=token.rate_per_minute,
        keys=[i.to_dict() for i in identities],
    )


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(current_services().openapi)


@blueprint.get("/docs")
def docs() -> str:
    document = current_services().openapi
    listed = [
        {
            "method": method,
            "path": path,
            "operation": operation,
            "fields": form_fields(operation),
            "secured": any(operation.get("security", document.get("security", []))),
        }
        for method, path, operation in operations(document)
    ]
    return render_template("api_docs.html", document=document, operations=listed)


def init_app(app: Flask, services: Services) -> None:
    """Mount ``/api/v1`` (signing, verification, the API's documentation) on ``app``."""
    app.register_blueprint(blueprint)
