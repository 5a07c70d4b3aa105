"""Files people work on in the web pages: uploaded PDFs, their signed versions, page previews
and validation reports, kept per user under ``DATA/work`` and removed after a day.

Ids are random (unguessable) and every lookup is confined to the user's own folder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
import subprocess
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from signer.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from signer.pdf_input import check_pdf_stream, page_count, page_geometry, read_pdf

from .accounts import Account
from .errors import NotFound
from .signing import PdfRequest, SignedPdf, SigningService

ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
MAX_AGE = dt.timedelta(hours=24)
PREVIEW_PIXELS = 1000  # the longer side of a page preview
MAX_PAGES_LISTED = 2000
RENDER_TIMEOUT = 60


def safe_name(name: str | None, default: str = "document") -> str:
    """A file name that keeps Vietnamese letters but no path, control or shell characters."""
    text = unicodedata.normalize("NFC", (name or "").replace("\\", "/").split("/")[-1])
    text = "".join(c for c in text if unicodedata.category(c)[0] not in "CZ" or c == " ")
    text = re.sub(r"[\s<>:\"|?*%;]+", " ", text).strip(" .")
    return text[:120] or default


def new_id() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class PageBox:
    """A page as the browser needs it: its visible area (crop box) in PDF points."""

    x1: float
    y1: float
    x2: float
    y2: float
    rotate: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [self.x1, self.y1, self.x2, self.y2],
            "width": self.x2 - self.x1,
            "height": self.y2 - self.y1,
            "rotate": self.rotate,
        }


@dataclass(frozen=True)
class Upload:
    id: str
    name: str
    path: Path
    pages: tuple[PageBox, ...]
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "signed": self.signed,
            "pages": [p.to_dict() for p in self.pages],
        }


def page_boxes(path: Path) -> tuple[PageBox, ...]:
    """The visible area and rotation of every page (at most :data:`MAX_PAGES_LISTED`)."""
    with path.open("rb") as stream:
        check_pdf_stream(stream, path.name)
        reader = read_pdf(stream, path.name)
        count = min(page_count(reader), MAX_PAGES_LISTED)
        pages = [page_geometry(reader, index) for index in range(count)]
    if not pages:
        raise InvalidDocument(f"{path.name} has no pages")
    return tuple(PageBox(*page.box, page.rotate) for page in pages)


class Workspace:
    """Per-user uploads (PDFs to sign, their signed versions) and validation reports."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _user_dir(self, owner: str) -> Path:
        if not re.match(r"^[a-z0-9._-]{1,64}$", owner) or owner.startswith("."):
            raise NotFound("no such user folder")
        return self.root / owner

    def _dir(self, owner: str, item_id: str) -> Path:
        if not ID.match(item_id):
            raise NotFound(f"no upload {item_id!r}")
        return self._user_dir(owner) / "uploads" / item_id

    # -- PDFs ------------------------------------------------------------------------------

    def add_pdf(self, owner: str, name: str | None, stream: IO[bytes]) -> Upload:
        """Store an uploaded PDF (checked to be a readable, unencrypted PDF)."""
        self.purge()
        upload_id = new_id()
        folder = self._dir(owner, upload_id)
        folder.mkdir(parents=True)
        target = folder / "document.pdf"
        try:
            size = _copy(stream, target, self.max_bytes)
            if size == 0:
                raise InvalidDocument(f"{safe_name(name)} is empty (0 bytes)")
            with target.open("rb") as check:
                if b"%PDF-" not in check.read(1024):
                    raise UnsupportedFormat(f"{safe_name(name)} is not a PDF")
            pages = page_boxes(target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._save(folder, upload_id, safe_name(name, "document.pdf"), pages, signed=False)

    def _save(
        self, folder: Path, upload_id: str, name: str, pages: tuple[PageBox, ...], signed: bool
    ) -> Upload:
        meta = {
            "name": name,
            "signed": signed,
            "pages": [p.to_dict()["box"] + [p.rotate] for p in pages],
        }
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return Upload(upload_id, name, folder / "document.pdf", pages, signed)

    def get(self, owner: str, upload_id: str) -> Upload:
        folder = self._dir(owner, upload_id)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise NotFound(f"no upload {upload_id!r}") from None
        pages = tuple(
            PageBox(float(p[0]), float(p[1]), float(p[2]), float(p[3]), int(p[4]))
            for p in meta["pages"]
        )
        return Upload(upload_id, meta["name"], folder / "document.pdf", pages, meta["signed"])

    def new_output(self, owner: str) -> tuple[str, Path]:
        """A fresh upload id and the path its signed PDF is to be written to."""
        upload_id = new_id()
        folder = self._dir(owner, upload_id)
        folder.mkdir(parents=True)
        return upload_id, folder / "document.pdf"

    def add_signed(self, owner: str, upload_id: str, source: Upload) -> Upload:
        """Register the signed version written at ``new_output``'s path."""
        folder = self._dir(owner, upload_id)
        stem = source.name[:-4] if source.name.lower().endswith(".pdf") else source.name
        name = stem if stem.endswith("-signed") else f"{stem}-signed"
        return self._save(folder, upload_id, f"{name}.pdf", page_boxes(folder / "document.pdf"),
                          signed=True)  # fmt: skip

    def discard(self, owner: str, upload_id: str) -> None:
        shutil.rmtree(self._dir(owner, upload_id), ignore_errors=True)

    def page_png(self, owner: str, upload_id: str, page: int) -> Path:
        """A PNG preview of page ``page`` (1-based) of its crop box, rendered once by pdftoppm."""
        upload = self.get(owner, upload_id)
        if not 1 <= page <= len(upload.pages):
            raise NotFound(f"page {page} does not exist: the document has {len(upload.pages)}")
        target = upload.path.parent / f"page-{page}.png"
        if target.is_file():
            return target
        prefix = upload.path.parent / f".render-{page}-{secrets.token_hex(4)}"
        command = [
            "pdftoppm", "-f", str(page), "-l", str(page), "-png", "-cropbox",
            "-scale-to", str(PREVIEW_PIXELS), "-singlefile", str(upload.path), str(prefix),
        ]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, timeout=RENDER_TIMEOUT, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise InvalidDocument(f"page {page} cannot be rendered: {exc}") from None
        prefix.with_suffix(".png").replace(target)
        return target

    # -- reports ---------------------------------------------------------------------------

    def save_report(self, owner: str, report: dict[str, Any]) -> str:
        self.purge()
        report_id = new_id()
        folder = self._user_dir(owner) / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, ensure_ascii=False, indent=2)
        (folder / f"{report_id}.json").write_text(text, encoding="utf-8")
        return report_id

    def report(self, owner: str, report_id: str) -> dict[str, Any]:
        if not ID.match(report_id):
            raise NotFound(f"no report {report_id!r}")
        try:
            text = (self._user_dir(owner) / "reports" / f"{report_id}.json").read_text("utf-8")
        except OSError:
            raise NotFound(f"no report {report_id!r}") from None
        data: dict[str, Any] = json.loads(text)
        return data

    # -- housekeeping ----------------------------------------------------------------------

    def purge(self, max_age: dt.timedelta = MAX_AGE) -> None:
        """Remove uploads and reports older than ``max_age``."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - max_age.total_seconds()
        for user in self.root.iterdir():
            for item in [*user.glob("uploads/*"), *user.glob("reports/*.json")]:
                try:
                    if item.stat().st_mtime < cutoff:
                        if item.is_dir():
                            shutil.rmtree(item, ignore_errors=True)
                        else:
                            item.unlink(missing_ok=True)
                except OSError:
                    continue


def _copy(stream: IO[bytes], target: Path, limit: int) -> int:
    size = 0
    with target.open("wb") as out:
        while block := stream.read(1 << 20):
            size += len(block)
            if size > limit:
                raise DocumentTooLarge(f"uploads are limited to {limit // 2**20} MiB")
            out.write(block)
    return size


def save_upload(stream: IO[bytes], folder: Path, name: str | None, limit: int) -> Path:
    """Write an uploaded file into ``folder`` under a safe version of its own name."""
    target = folder / safe_name(name)
    if target.exists():
        target = folder / f"{new_id()[:6]}-{target.name}"
    _copy(stream, target, limit)
    return target


__all__ = ["PageBox", "Upload", "Workspace", "safe_name", "save_upload", "sign_upload"]


def sign_upload(
    workspace: Workspace,
    signing: SigningService,
    owner: Account,
    upload_id: str,
    key: str | None,
    request: PdfRequest,
) -> tuple[Upload, SignedPdf]:
    """Sign one of ``owner``'s uploads into a new upload (the signed version)."""
    source = workspace.get(owner.username, upload_id)
    new, output = workspace.new_output(owner.username)
    try:
        signed = signing.sign_pdf(owner.principal(), key, source.path, output, request)
        return workspace.add_signed(owner.username, new, source), signed
    except BaseException:
        workspace.discard(owner.username, new)
        raise
