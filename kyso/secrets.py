"""Where passphrases come from: the environment, a file, or a prompt; never argv."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from certs.keyfile import write_private

PASSPHRASE_ENV = "KYSO_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
PASSPHRASE_FILE_ENV = "KYSO_PASSPHRASE_FILE"  # noqa: S105
SECRET_KEY_ENV = "KYSO_SECRET_KEY"  # noqa: S105


class NoPassphrase(click.UsageError):
    """No passphrase could be found without prompting."""


def passphrase(confirm: bool = False) -> bytes:
    """The PKI passphrase from ``KYSO_PASSPHRASE``, ``KYSO_PASSPHRASE_FILE`` or a prompt."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode()
    file = os.environ.get(PASSPHRASE_FILE_ENV)
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip().encode()
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


def ensure_demo_passphrase_file() -> None:
    """For the demo: create the passphrase file named by KYSO_PASSPHRASE_FILE if it is missing."""
    file = os.environ.get(PASSPHRASE_FILE_ENV)
    if os.environ.get(PASSPHRASE_ENV) or not file or Path(file).exists():
        return
    write_private(Path(file), (secrets.token_urlsafe(24) + "\n").encode())


def flask_secret_key(secrets_dir: Path) -> bytes:
    """The key that signs session cookies: ``KYSO_SECRET_KEY``, or one generated once into
    ``secrets_dir/flask-secret`` (mode 0600) and kept, so sessions survive a restart."""
    value = os.environ.get(SECRET_KEY_ENV)
    if value:
        return value.encode()
    file = secrets_dir / "flask-secret"
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
