"""`kyso sign …` and `kyso verify`: signing and validation from the command line."""

from __future__ import annotations

import click

from .cli_common import KysoGroup


@click.group("sign", cls=KysoGroup)
def sign() -> None:
    """Sign a document: PDF (PAdES), XML (XAdES) or any file (CAdES, detached)."""


# Format-specific commands register themselves here (see kyso/cli.py).
