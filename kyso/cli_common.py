"""What every `kyso` command shares: error handling, lazily imported commands, console output.

This module is imported by ``kyso --help``: it imports nothing heavier than click at the top
(the console, the database and the domain errors are imported when first used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from gettext import gettext as _
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .config import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa
    from rich.console import Console

    from certs.keystore import SigningKey
    from certs.pki import Pki

    from .services import Root

    console: Console


def get_console() -> Console:
    """The rich console, made (and rich imported) on first use."""
    if "console" not in globals():
        from rich.console import Console

        globals()["console"] = Console(highlight=False, soft_wrap=True)
    made: Console = globals()["console"]
    return made


def __getattr__(name: str) -> Any:
    """``from .cli_common import console``: the console, made by its first importer."""
    if name == "console":
        return get_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can act on (bad input, wrong passphrase, unknown agency…): one line
    and exit code 2. Imported when an error is being handled, not when the CLI starts."""
    import sqlalchemy as sa

    from certs.errors import PKIError
    from directory import DirectoryError, UnknownAgency
    from exchange.identity import UnknownCredential
    from signer.errors import SignerError

    from .errors import ServiceError

    return (
        PKIError,
        SignerError,
        DirectoryError,
        UnknownAgency,
        UnknownCredential,
        ServiceError,
        sa.exc.OperationalError,
    )


def print_rows(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], title: str = "") -> None:
    """A table on a terminal; tab-separated lines (header first) for pipes and scripts."""
    out = get_console()
    if out.is_terminal:
        from rich.table import Table

        table = Table(*headers, title=title or None)
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    if title:
        click.echo(title)
    for row in (headers, *rows):
        click.echo("\t".join(row))


@dataclass(frozen=True)
class Lazy:
    """A subcommand imported only when it is used: where it is (``module:attribute``), and its
    one-line help for its group's ``--help`` (tests/test_cli.py checks both against it)."""

    target: str
    help: str

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class KysoCommand(click.Command):
    """A command that runs its root group's hooks (:meth:`KysoGroup.before_commands`) just
    before its own callback: after its arguments are parsed, so neither ``--help`` nor a usage
    error pays for them."""

    def invoke(self, ctx: click.Context) -> Any:
        root = ctx.find_root().command
        if isinstance(root, KysoGroup):
            root.run_hooks()
        return super().invoke(ctx)


class KysoGroup(click.Group):
    """A group that turns domain errors into one-line messages and exit code 2, and imports
    its ``lazy`` subcommands only when one is used (``--help`` lists them from their
    :class:`Lazy` help without importing them).

    Commands and groups made with its decorators are a :class:`KysoCommand` and a
    :class:`KysoGroup`.
    """

    command_class = KysoCommand
    group_class = type  # subgroups are KysoGroups too

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Lazy] = dict(lazy or {})
        self._hooks: list[Callable[[], None]] = []

    def before_commands(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` before any command under this (root) group runs (see KysoCommand)."""
        self._hooks.append(hook)

    def run_hooks(self) -> None:
        for hook in self._hooks:
            hook()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's list of commands, with the help of those not imported yet from :class:`Lazy`."""
        commands = [
            (name, self.commands.get(name) or click.Command(name, help=self.lazy[name].help))
            for name in self.list_commands(ctx)
        ]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _command in commands)
        rows = [(name, command.get_short_help_str(limit)) for name, command in commands]
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: --help, usage errors, Ctrl-C
        except Exception as exc:
            if not isinstance(exc, user_errors()):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)


@dataclass
class Context:
    """What a command gets: the settings, and the parts of the object graph it uses, built by
    the composition root (:class:`kyso.services.Root`) when first used."""

    settings: Settings
    _root: Root | None = None

    @property
    def root(self) -> Root:
        """The object graph of this command; the passphrase is asked when a part needs it."""
        if self._root is None:
            from .secrets import passphrase
            from .services import Root

            settings = self.settings
            self._root = Root(settings, lambda: passphrase(settings))
        return self._root

    def use(self, settings: Settings) -> None:
        """Work with ``settings`` from now on (``kyso serve --data``): a new object graph."""
        self.settings = settings
        self._root = None

    @property
    def engine(self) -> sa.Engine:
        """The database, migrated."""
        return self.root.engine

    def pki(self, directory: Path | None = None) -> Pki:
        """The PKI of the settings, or the one in ``directory`` (``--dir``)."""
        return self.root.pki if directory is None else self.root.pki_at(directory)

    def open_key(self, reference: str) -> SigningKey:
        """The signing key ``reference`` names: ``p12:`` with the passphrase, ``pkcs11:`` with
        the PKCS#11 library and PIN of the settings (unless its URI names them)."""
        from certs.keystore import open_key

        secret = self.root.passphrase if reference.startswith("p12:") else None
        return open_key(reference, secret, pkcs11=self.settings.pkcs11)


pass_context = click.make_pass_decorator(Context)


def default_tsa_url(settings: Settings) -> str | None:
    """The TSA of the local PKI, from the URL its certificates were issued with."""
    from certs.layout import PkiLayout

    layout = PkiLayout(settings.pki_dir)
    if not layout.exists():
        return None
    return str(layout.read_manifest()["base_url"]).rstrip("/") + "/pki/tsa"
