"""What every `kyso` command shares: error handling, console output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from certs.errors import PKIError
from certs.layout import PkiLayout
from certs.pki import Pki
from certs.store import CertificateStore
from directory import DirectoryError, UnknownAgency
from signer.errors import SignerError

from .config import Settings
from .db import make_engine, upgrade
from .errors import ServiceError

console = Console(highlight=False, soft_wrap=True)
USER_ERRORS = (
    PKIError,
    SignerError,
    DirectoryError,
    UnknownAgency,
    ServiceError,
    sa.exc.OperationalError,
)


def print_rows(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], title: str = "") -> None:
    """A table on a terminal; tab-separated lines (header first) for pipes and scripts."""
    if console.is_terminal:
        table = Table(*headers, title=title or None)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        click.echo(title)
    for row in (headers, *rows):
        click.echo("\t".join(row))


class KysoGroup(click.Group):
    """A group that turns domain errors into one-line messages and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)


@dataclass
class Context:
    settings: Settings
    _engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.db_url)
            upgrade(self._engine)
        return self._engine

    def pki(self, directory: Path | None = None) -> Pki:
        return Pki(PkiLayout(directory or self.settings.pki_dir), CertificateStore(self.engine))


pass_context = click.make_pass_decorator(Context)


def default_trust_dir(settings: Settings) -> Path:
    """Without --trust, a verifier trusts the local PKI's root CA."""
    return settings.pki_dir / "ca" / "root.pem"


def default_tsa_url(settings: Settings) -> str | None:
    """The TSA of the local PKI, from the URL its certificates were issued with."""
    layout = PkiLayout(settings.pki_dir)
    if not layout.exists():
        return None
    return str(layout.read_manifest()["base_url"]).rstrip("/") + "/pki/tsa"
