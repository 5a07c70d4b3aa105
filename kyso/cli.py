"""The `kyso` command line: one entry point for the PKI, the directory and the server.

User errors (bad input, wrong passphrase, unknown agency…) print one line and exit with 2;
only bugs show a traceback.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import alembic.util
import click
from rich.markup import escape

from certs.agencies import person_name, person_subject, seal_name, seal_subject
from certs.keystore import generate_in_token, store_certificate_in_token
from certs.layout import PkiLayout
from certs.names import SubjectSpec
from certs.pkcs11uri import Pkcs11Uri
from certs.pki import parse_reason
from certs.profiles import Profile
from certs.services import PkiServices
from certs.store import CertificateStore, parse_serial, serial_hex
from directory import Officer, load_directory
from directory.store import AgencyStore

from .cli_accounts import accounts as accounts_group
from .cli_accounts import tokens as tokens_group
from .cli_common import Context, KysoGroup, console, pass_context, print_rows
from .cli_exchange import COMMANDS as EXCHANGE_COMMANDS
from .cli_exchange import demo_exchange, record_revocation
from .cli_pdf import sign_pdf, sign_pdfs, verify_command
from .cli_sign import sign as sign_group
from .cli_xml import sign_cms, sign_xml
from .config import Settings
from .db import make_engine, new_revision
from .secrets import ensure_demo_passphrase_file, passphrase


@click.group(cls=KysoGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", envvar="KYSO_DATA", help="Data directory (default: var).")
@click.option("--db", envvar="KYSO_DB", help="Database URL (default: SQLite under --data).")
@click.version_option(package_name="kyso")
@click.pass_context
def main(ctx: click.Context, data: str | None, db: str | None) -> None:
    """Kyso: digital signatures and document exchange for local government."""
    ctx.obj = Context(Settings.load(data=data, db=db))


# --- PKI -------------------------------------------------------------------------------------


@main.group(cls=KysoGroup)
def pki() -> None:
    """The local CA: create it, issue and revoke certificates."""


def _pki_dir_option(f: Any) -> Any:
    return click.option(
        "--dir", "directory", type=click.Path(path_type=Path), help="PKI directory."
    )(f)


@pki.command("init")
@_pki_dir_option
@click.option(
    "--base-url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="URL the CRL, OCSP and CA-issuer links in certificates point to.",
)
@click.option(
    "--directory-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Agency directory (JSON); default: the Nghệ An demo directory.",
)
@pass_context
def pki_init(
    obj: Context, directory: Path | None, base_url: str, directory_file: Path | None
) -> None:
    """Create a complete demo PKI: CAs, TSA, OCSP, relay, agency seals and officers."""
    from .demo.pki import create_demo_pki

    target = directory or obj.settings.pki_dir
    agencies = load_directory(directory_file)
    secret = passphrase(confirm=True)
    AgencyStore(obj.engine).load(agencies)
    with console.status("Creating the PKI…") as status:
        identities = create_demo_pki(
            target,
            base_url,
            secret,
            CertificateStore(obj.engine),
            agencies,
            progress=lambda step: status.update(f"Issuing: {step}"),
        )
    rows = [
        (i.label, serial_hex(i.issued.certificate.serial_number), i.issued.key_ref, str(i.image))
        for i in identities
    ]
    print_rows(("identity", "serial", "key reference", "image"), rows, f"Demo PKI in {target}")
    console.print(f"{len(agencies)} agencies loaded; CRL, OCSP and TSA served under {base_url}/pki")


@pki.group("issue", cls=KysoGroup)
def pki_issue() -> None:
    """Issue a certificate for an agency (seal) or an officer (person)."""


def _issue_options(f: Any) -> Any:
    options = [
        _pki_dir_option,
        click.option("--agency", required=True, help="Agency code, e.g. 000.00.00.H41."),
        click.option(
            "--key-type",
            default="rsa2048",
            show_default=True,
            type=click.Choice(["rsa2048", "rsa3072", "p256", "p384"]),
        ),
        click.option("--key-ref", help="Generate the key in an HSM: an RFC 7512 pkcs11: URI."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _issue(
    obj: Context,
    directory: Path | None,
    profile: Profile,
    subject: SubjectSpec,
    name: str,
    key_type: str,
    key_ref: str | None,
) -> None:
    pki = obj.pki(directory)
    secret = passphrase()
    if key_ref:
        uri = Pkcs11Uri.parse(key_ref)
        public_key = generate_in_token(uri, key_type)
        issued = pki.issue(
            profile, subject, secret, name=name, public_key=public_key, key_ref=uri.redacted()
        )
        store_certificate_in_token(uri, issued.certificate)
    else:
        issued = pki.issue(profile, subject, secret, name=name, key_type=key_type)
    console.print(f"issued {serial_hex(issued.certificate.serial_number)} to {subject.common_name}")
    console.print(f"  certificate: {issued.certificate_path}")
    console.print(f"  key:         {issued.key_ref}")


@pki_issue.command("seal")
@_issue_options
@pass_context
def issue_seal(
    obj: Context, directory: Path | None, agency: str, key_type: str, key_ref: str | None
) -> None:
    """Issue an agency's seal (organisation) certificate."""
    record = AgencyStore(obj.engine).get(agency)
    _issue(obj, directory, Profile.SEAL, seal_subject(record), seal_name(record), key_type, key_ref)


@pki_issue.command("person")
@_issue_options
@click.option("--name", "full_name", required=True, help="Full name, e.g. 'Nguyễn Văn An'.")
@click.option("--title", default="", help="Position, e.g. 'Chủ tịch'.")
@pass_context
def issue_person(
    obj: Context,
    directory: Path | None,
    agency: str,
    key_type: str,
    key_ref: str | None,
    full_name: str,
    title: str,
) -> None:
    """Issue an officer's personal certificate."""
    record = AgencyStore(obj.engine).get(agency)
    officer = Officer(full_name, title, agency)
    subject = person_subject(officer, record)
    _issue(obj, directory, Profile.PERSON, subject, person_name(officer), key_type, key_ref)


@pki.command("revoke")
@_pki_dir_option
@click.argument("serial")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    help="RFC 5280 reason: keyCompromise, affiliationChanged, superseded, "
    "cessationOfOperation, certificateHold, privilegeWithdrawn, unspecified.",
)
@pass_context
def pki_revoke(obj: Context, directory: Path | None, serial: str, reason: str) -> None:
    """Revoke a certificate (SERIAL in hex) and publish a new CRL."""
    try:
        flag = parse_reason(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from None
    record = obj.pki(directory).revoke(parse_serial(serial), flag, passphrase())
    record_revocation(obj, serial_hex(record.serial), record.common_name, flag.value)
    console.print(f"revoked {serial_hex(record.serial)} ({record.common_name}): {flag.value}")


@pki.command("list")
@_pki_dir_option
@click.option("--agency", help="Only this agency's certificates.")
@pass_context
def pki_list(obj: Context, directory: Path | None, agency: str | None) -> None:
    """List issued certificates with their status."""
    rows = [
        (
            serial_hex(r.serial),
            r.profile,
            r.common_name,
            r.agency_code or "",
            f"{r.not_after:%Y-%m-%d}",
            f"revoked ({r.revocation_reason})" if r.revoked else "valid",
        )
        for r in obj.pki(directory).store.all(agency)
    ]
    print_rows(("serial", "profile", "subject", "agency", "expires", "status"), rows)


# --- Directory -------------------------------------------------------------------------------


@main.group(cls=KysoGroup)
def directory() -> None:
    """The agency directory."""


@directory.command("load")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@pass_context
def directory_load(obj: Context, file: Path | None) -> None:
    """Load (insert or update) agencies from FILE, or the demo directory."""
    count = AgencyStore(obj.engine).load(load_directory(file))
    console.print(f"{count} agencies loaded")


@directory.command("show")
@pass_context
def directory_show(obj: Context) -> None:
    """Print the agency tree."""
    for depth, agency in AgencyStore(obj.engine).directory().walk():
        console.print(f"{'  ' * depth}{agency.code}  {agency.name}  [dim]({agency.level})[/dim]")


# --- Demo and server -------------------------------------------------------------------------


@main.group(cls=KysoGroup)
def demo() -> None:
    """The demo province, for trying Kyso out."""


@demo.command("init")
@click.option("--if-missing", is_flag=True, help="Do nothing if the PKI already exists.")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True)
@click.pass_context
def demo_init(ctx: click.Context, if_missing: bool, base_url: str) -> None:
    """Create the demo PKI, directory, accounts and API token under the data directory."""
    obj: Context = ctx.obj
    if if_missing and PkiLayout(obj.settings.pki_dir).exists():
        console.print(f"demo PKI found in {obj.settings.pki_dir}")
    else:
        ensure_demo_passphrase_file()
        ctx.invoke(pki_init, directory=None, base_url=base_url, directory_file=None)
    ctx.invoke(demo_accounts)
    ctx.invoke(demo_exchange)
    sample = obj.settings.data_dir / "samples" / "quyet-dinh-15.pdf"
    if not sample.exists():
        from .samples import decision_pdf

        sample.parent.mkdir(parents=True, exist_ok=True)
        decision_pdf(sample)
    console.print(f"a sample decision to sign: {sample}")


@demo.command("accounts")
@pass_context
def demo_accounts(obj: Context) -> None:
    """Add the demo accounts (one password) and the province's API token, if missing."""
    from .accounts import AccountStore
    from .demo_accounts import PASSWORD_FILE, TOKEN_FILE, create_demo_accounts
    from .identities import Identities
    from .tokens import TokenStore

    setup = create_demo_accounts(
        AccountStore(obj.engine),
        TokenStore(obj.engine),
        Identities(CertificateStore(obj.engine), PkiLayout(obj.settings.pki_dir)),
        obj.settings.secrets_dir,
    )
    secrets_dir = obj.settings.secrets_dir
    console.print(
        f"{len(setup.accounts)} demo accounts; their password is in "
        f"{escape(str(secrets_dir / PASSWORD_FILE))}"
    )
    if setup.token is not None:
        console.print(f"the demo API token is in {escape(str(secrets_dir / TOKEN_FILE))}")


@main.command()
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

    from .app import create_app

    if data is not None:
        obj.settings = Settings.load(data=data)
        obj._engine = None

    secret = passphrase()
    if workers == 1:
        app = create_app(obj.settings, secret)
    else:
        # The workers build their apps after the fork; a wrong passphrase must stop the
        # server here, in one line, not in every worker with a traceback.
        PkiServices.load(obj.pki(), secret)
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
    records = [r for r in obj.pki().store.all() if r.profile in ("seal", "person")]
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
    from .accounts import AccountStore
    from .demo_accounts import DEMO_ACCOUNTS, PASSWORD_FILE, TOKEN_FILE

    password_file = obj.settings.secrets_dir / PASSWORD_FILE
    store = AccountStore(obj.engine)
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


main.add_command(sign_group)
for _command in EXCHANGE_COMMANDS:
    main.add_command(_command)
demo.add_command(demo_exchange)
main.add_command(accounts_group)
main.add_command(tokens_group)
sign_group.add_command(sign_xml)
sign_group.add_command(sign_cms)
sign_group.add_command(sign_pdf)
sign_group.add_command(sign_pdfs)
main.add_command(verify_command)


@main.group(cls=KysoGroup)
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
