"""What every `kyso` command shares: error handling, console output."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from certs.errors import PKIError
from exchange.directory import DirectoryError, UnknownAgency
from signer.errors import SignerError

console = Console(highlight=False, soft_wrap=True)
USER_ERRORS = (PKIError, SignerError, DirectoryError, UnknownAgency, sa.exc.OperationalError)


def print_rows(headers: tuple[str, ...], rows: list[tuple[str, ...]], title: str = "") -> None:
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
