"""`kyso directory …`: the agency directory."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_common import Context, KysoGroup, console, pass_context


@click.group("directory", cls=KysoGroup)
def directory() -> None:
    """The agency directory."""


@directory.command("load")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@pass_context
def directory_load(obj: Context, file: Path | None) -> None:
    """Load (insert or update) agencies from FILE, or the demo directory."""
    from directory import load_directory

    count = obj.root.agencies.load(load_directory(file))
    console.print(f"{count} agencies loaded")


@directory.command("show")
@pass_context
def directory_show(obj: Context) -> None:
    """Print the agency tree."""
    for depth, agency in obj.root.agencies.directory().walk():
        console.print(f"{'  ' * depth}{agency.code}  {agency.name}  [dim]({agency.level})[/dim]")
