"""`kyso accounts …` and `kyso tokens …`: people of the web pages and API tokens of agency
systems. Passwords are read from a prompt or stdin, never from the command line; a token is
printed once, when it is made.
"""

from __future__ import annotations

import sys

import click

from certs.layout import PkiLayout
from certs.store import CertificateStore
from directory.store import AgencyStore

from .accounts import KEY_KINDS, AccountStore, Role
from .cli_common import Context, KysoGroup, console, pass_context, print_rows
from .errors import InvalidRequest
from .identities import Identities, key_name
from .tokens import DEFAULT_RATE, ApiToken, TokenStore, check_token_keys

ROLES = click.Choice([r.value for r in Role])


def _identities(obj: Context) -> Identities:
    return Identities(CertificateStore(obj.engine), PkiLayout(obj.settings.pki_dir))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if sys.stdin.isatty():
        entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return entered
    raise InvalidRequest("no password: use --password-stdin or run in a terminal")


def _resolve_keys(obj: Context, agency: str | None, keys: tuple[str, ...], role: Role) -> list[str]:
    identities = _identities(obj)
    refs = [identities.resolve(k) for k in keys]
    if refs:
        if agency is None:
            raise InvalidRequest("keys belong to an agency: give --agency")
        AgencyStore(obj.engine).get(agency)
        identities.check_grant(agency, refs, KEY_KINDS[role] or ("none",))
    return refs


@click.group("accounts", cls=KysoGroup)
def accounts() -> None:
    """Accounts of the web pages (officer, clerk, auditor, admin)."""


@accounts.command("add")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name, e.g. 'Nguyễn Văn An'.")
@click.option("--role", required=True, type=ROLES, help="officer, clerk, auditor or admin.")
@click.option("--agency", help="Agency code (officers and clerks).")
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="A key this account may sign with (reference, name or serial); repeatable.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@pass_context
def accounts_add(
    obj: Context,
    username: str,
    full_name: str,
    role: str,
    agency: str | None,
    keys: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Create an account; its keys must be its agency's (clerks: the seal only)."""
    chosen = Role(role)
    if agency:
        AgencyStore(obj.engine).get(agency)
    refs = _resolve_keys(obj, agency, keys, chosen)
    password = _read_password(password_stdin)
    account = AccountStore(obj.engine).add(
        username, full_name, chosen, password, agency, tuple(refs)
    )
    console.print(f"account {account.username} ({account.role}) created")


@accounts.command("list")
@pass_context
def accounts_list(obj: Context) -> None:
    """List accounts, their roles and keys."""
    rows = [
        (
            a.username,
            a.full_name,
            a.role.value,
            a.agency_code or "",
            ", ".join(key_name(k) for k in a.key_refs),
            "active" if a.active else "disabled",
        )
        for a in AccountStore(obj.engine).all()
    ]
    print_rows(("username", "name", "role", "agency", "keys", "status"), rows)


@accounts.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@pass_context
def accounts_passwd(obj: Context, username: str, password_stdin: bool) -> None:
    """Set an account's password."""
    store = AccountStore(obj.engine)
    store.get(username)
    store.set_password(username, _read_password(password_stdin))
    console.print(f"password of {username} changed")


@accounts.command("disable")
@click.argument("username")
@pass_context
def accounts_disable(obj: Context, username: str) -> None:
    """Disable an account (its sessions end at the next request)."""
    AccountStore(obj.engine).set_active(username, False)
    console.print(f"account {username} disabled")


@click.group("tokens", cls=KysoGroup)
def tokens() -> None:
    """API tokens of agency systems."""


@tokens.command("create")
@click.option("--agency", required=True, help="The agency the token signs for.")
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    help="A seal of that agency the token may use (reference, name or serial); repeatable. "
    "Personal keys are refused: an officer's signature needs the officer in person.",
)
@click.option("--name", default="", help="What the token is for, e.g. 'iOffice'.")
@click.option("--rate", default=DEFAULT_RATE, show_default=True, help="Requests per minute.")
@pass_context
def tokens_create(obj: Context, agency: str, keys: tuple[str, ...], name: str, rate: int) -> None:
    """Create a token for an agency's seals; it is shown this once (only its hash is stored)."""
    AgencyStore(obj.engine).get(agency)
    identities = _identities(obj)
    refs = [identities.resolve(k) for k in keys]
    check_token_keys(identities, agency, refs)
    token, secret = TokenStore(obj.engine).create(agency, tuple(refs), name, rate)
    click.echo(f"token {token.id} for {agency}: {', '.join(key_name(r) for r in refs)}")
    click.echo(secret)


@tokens.command("list")
@click.option("--agency", help="Only this agency's tokens.")
@pass_context
def tokens_list(obj: Context, agency: str | None) -> None:
    """List tokens (never their secrets); a personal key an older token holds is marked."""
    identities = _identities(obj)
    rows = [
        (
            t.id,
            t.name,
            t.agency_code,
            _token_keys(identities, t),
            str(t.rate_per_minute),
            f"{t.created_at:%Y-%m-%d}",
            "revoked" if t.revoked_at else "active",
        )
        for t in TokenStore(obj.engine).all(agency)
    ]
    print_rows(("id", "name", "agency", "keys", "rate/min", "created", "status"), rows)


def _token_keys(identities: Identities, token: ApiToken) -> str:
    """The names of a token's keys; one it may no longer use says so."""
    names = []
    for ref in token.key_refs:
        identity = identities.find(ref)
        refused = identity is not None and identity.kind == "person"
        names.append(f"{key_name(ref)} (personal: refused)" if refused else key_name(ref))
    return ", ".join(names)


@tokens.command("revoke")
@click.argument("token_id")
@pass_context
def tokens_revoke(obj: Context, token_id: str) -> None:
    """Revoke a token at once."""
    token = TokenStore(obj.engine).revoke(token_id)
    console.print(f"token {token.id} ({token.name}) revoked")
