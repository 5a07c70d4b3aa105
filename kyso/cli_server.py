"""`kyso serve` and `kyso db …`: the server and its database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_common import Context, KysoCommand, KysoGroup, console, pass_context
from .config import Settings


@click.command("serve", cls=KysoCommand)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Threads per process.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes: 1 serves with waitress; more pre-fork gunicorn workers, one per core.",
)
@click.option("--data", help="Data directory (the same as `kyso --data`; default: var).")
@pass_context
def serve(obj: Context, host: str, port: int, threads: int, workers: int, data: str | None) -> None:
    """Serve Kyso (API, web pages, PKI services) with waitress, or gunicorn for --workers > 1."""
    from waitress import serve as waitress_serve

    from .app import build_app, create_app, prepare_process

    if data is not None:
        obj.use(Settings.load(data=data))

    root = obj.root
    secret = root.passphrase  # asked first, before the database is opened
    if workers == 1:
        prepare_process()
        app = build_app(root.services)
    else:
        # The workers build their apps after the fork; a wrong passphrase must stop the
        # server here, in one line, not in every worker with a traceback.
        root.pki_services  # noqa: B018 - opening the service keys checks the passphrase
        app = None
    url = f"http://{host}:{port}"
    console.print(f"Kyso is running on [bold]{url}[/bold]")
    console.print(f"  web:  {url}/login · {url}/sign · {url}/verify · {url}/admin")
    console.print(f"  API:  {url}/api/v1/docs · {url}/api/v1/openapi.json")
    console.print(f"  PKI: {url}/pki/crl/issuing.crl · {url}/pki/ocsp · {url}/pki/tsa")
    console.print(f"  data: {obj.settings.data_dir} · database: {obj.settings.db_url}")
    _print_demo_keys(obj)
    _print_demo_accounts(obj, url)
    sys.stdout.flush()
    if app is not None:
        waitress_serve(app, host=host, port=port, threads=threads, ident="kyso")
        return
    from .prefork import serve_prefork

    obj.engine.dispose()  # migrated when opened; no pooled connection may cross the fork
    settings = obj.settings
    serve_prefork(lambda: create_app(settings, secret), host, port, workers, threads)


def _print_demo_keys(obj: Context) -> None:
    records = [r for r in obj.root.certificates.all() if r.profile in ("seal", "person")]
    if not records:
        return
    console.print("  Demo signing keys (passphrase: $KYSO_PASSPHRASE or $KYSO_PASSPHRASE_FILE):")
    for r in records[:8]:
        console.print(f"    {r.common_name:<28} {r.key_ref}")
    if len(records) > 8:
        console.print(f"    … {len(records) - 8} more: `kyso pki list`")


def _print_demo_accounts(obj: Context, url: str) -> None:
    """The demo accounts and where their password and the demo API token are kept: the
    console may be a shared terminal, a CI log or a journal, so never the secrets themselves."""
    import shlex

    from rich.markup import escape

    from .demo_accounts import DEMO_ACCOUNTS, PASSWORD_FILE, TOKEN_FILE

    password_file = obj.settings.secrets_dir / PASSWORD_FILE
    store = obj.root.accounts
    found = [a for a in (store.find(d.username) for d in DEMO_ACCOUNTS) if a is not None]
    if password_file.exists() and found:
        console.print(f"  Demo accounts (their password is in {escape(str(password_file))}):")
        for account in found:
            console.print(
                f"    {account.username:<8} {account.role:<8} {account.full_name}"
                f"{' · ' + account.agency_code if account.agency_code else ''}"
            )
    token_file = obj.settings.secrets_dir / TOKEN_FILE
    if token_file.exists():
        sample = obj.settings.data_dir / "samples" / "quyet-dinh-15.pdf"
        console.print(f"  Demo API token (UBND tỉnh Nghệ An) in {escape(str(token_file))}:")
        console.print(
            escape(
                f'    curl -H "Authorization: Bearer $(cat {shlex.quote(str(token_file))})" '
                f"-F file=@{shlex.quote(str(sample))} "
                f"-F key=seal-000.00.00.H41 -o signed.pdf {url}/api/v1/sign/pdf"
            )
        )


@click.group("db", cls=KysoGroup)
def db() -> None:
    """The database."""


@db.command("upgrade")
@pass_context
def db_upgrade(obj: Context) -> None:
    """Apply the database migrations."""
    obj.engine  # noqa: B018 - creating the engine migrates it
    console.print(f"database {obj.settings.db_url} is up to date")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does, e.g. 'add notes'.")
@click.option(
    "--against",
    metavar="URL",
    help="A scratch database to build with the migrations and compare with the tables "
    "(default: a new SQLite file; give an empty PostgreSQL one for its types).",
)
@click.option("--empty", is_flag=True, help="Write a migration with no operations (data changes).")
def db_revision(message: str, against: str | None, empty: bool) -> None:
    """Write the next migration from the tables: what they have and the migrations do not build.

    Writes kyso/migrations/versions/NNNN_<message>.py (read it, then commit it); writes nothing
    if the migrations already build exactly the tables.
    """
    import tempfile

    import alembic.util

    from .db import make_engine, new_revision

    with tempfile.TemporaryDirectory(prefix="kyso-revision-") as scratch:
        engine = make_engine(against or f"sqlite:///{Path(scratch) / 'scratch.sqlite'}")
        try:
            path = new_revision(message, engine, empty=empty)
        except alembic.util.CommandError as exc:  # e.g. two heads: a merge is needed first
            raise click.ClickException(str(exc)) from None
        finally:
            engine.dispose()
    if path is None:
        console.print("nothing to generate: the migrations already build exactly the tables")
    else:
        console.print(f"wrote {path}")
