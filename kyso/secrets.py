"""Where passphrases come from: the settings (``KYSO_PASSPHRASE``, ``KYSO_PASSPHRASE_FILE``,
read in ``kyso/config.py``), or a prompt; never argv."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click

from certs.keyfile import write_private

from .config import Settings

PASSPHRASE_ENV = "KYSO_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
PASSPHRASE_FILE_ENV = "KYSO_PASSPHRASE_FILE"  # noqa: S105


class NoPassphrase(click.UsageError):
    """No passphrase could be found without prompting."""


def passphrase(settings: Settings, confirm: bool = False) -> bytes:
    """The PKI passphrase: ``KYSO_PASSPHRASE``, the file ``KYSO_PASSPHRASE_FILE`` names, or a
    prompt (in a terminal only)."""
    if settings.passphrase:
        return settings.passphrase.encode()
    file = settings.passphrase_file
    if file:
        try:
            return file.read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise NoPassphrase(
                f"cannot read {PASSPHRASE_FILE_ENV}={file}: {exc.strerror}"
            ) from None
    if sys.stdin.isatty():
        entered: str = click.prompt(
            "Passphrase of the PKI keys", hide_input=True, confirmation_prompt=confirm
        )
        return entered.encode()
    raise NoPassphrase(
        f"no passphrase: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, or run in a terminal"
    )


def ensure_demo_passphrase_file(settings: Settings) -> None:
    """For the demo: create the passphrase file named by KYSO_PASSPHRASE_FILE if it is missing."""
    file = settings.passphrase_file
    if settings.passphrase or not file or file.exists():
        return
    write_private(file, (secrets.token_urlsafe(24) + "\n").encode())


def flask_secret_key(settings: Settings) -> bytes:
    """The key that signs session cookies: ``KYSO_SECRET_KEY``, or one generated once into
    ``secrets/flask-secret`` of the data directory (mode 0600) and kept, so sessions survive a
    restart."""
    if settings.secret_key:
        return settings.secret_key.encode()
    file = settings.secrets_dir / "flask-secret"
    if not file.exists():
        write_private(file, (secrets.token_urlsafe(48) + "\n").encode())
    return file.read_text(encoding="utf-8").strip().encode()


def write_secret(path: Path, value: str) -> None:
    """Write a demo secret (password, token) readable by the owner only."""
    write_private(path, (value + "\n").encode())


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
