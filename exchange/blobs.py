"""Content-addressed files: every package and attachment is kept once, named by its SHA-256.

``put`` writes to a temporary file in the same file system, fsyncs it, renames it into
``ab/cd/abcd…`` and fsyncs the directory, so that the file is durable *before* the database
transaction that refers to it commits. A crash in between leaves at most an unreferenced
file (never a row pointing at a missing or partial file); unreferenced files are harmless and
are reused by the next package with the same content.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from .errors import ExchangeError


class BlobMissing(ExchangeError):
    """A stored file is missing or its content no longer matches its name."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Files under ``root``, named by the SHA-256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise BlobMissing(f"{sha256!r} is not a SHA-256 in hex")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its SHA-256 (hex)."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.is_file() and target.stat().st_size == len(data):
            return sha256
        directory = target.parent
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        temporary = self.tmp / f"{sha256}.{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temporary, target)
        _fsync_dir(directory)
        if created:
            _fsync_dir(directory.parent)
            _fsync_dir(directory.parent.parent)
        return sha256

    def get(self, sha256: str, verify: bool = False) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"stored file {sha256} is missing") from None
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise BlobMissing(f"stored file {sha256} was changed on disk")
        return data
