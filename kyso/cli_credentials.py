"""`kyso credentials …`: every credential of :mod:`exchange.identity` in one place.

One table holds them, whatever their kind; this group issues, lists and revokes each kind::

    kyso credentials issue --kind bearer --agency 000.00.00.H41 --key seal-000.00.00.H41
    kyso credentials issue --kind hmac --agency 000.01.21.H41      # writes its 0600 JSON file
    kyso credentials issue --kind certificate --serial 1F2E…      # names a PKI certificate
    kyso credentials list [--agency CODE] [--kind KIND] [--all]
    kyso credentials revoke ID

``kyso tokens …`` (bearer tokens) and ``kyso agency …`` (HMAC keys) are the older names of
the same operations and answer as they always did; issuing and revoking here runs them.
"""

from __future__ import annotations

from pathlib import Path

import click

from exchange.identity import ALL_KINDS, Credential, Credentials, Kind, Role

from .cli_common import Context, KysoGroup, console, pass_context, print_rows
from .cli_exchange import _operator, exchange_errors
from .tokens import DEFAULT_RATE

STORED_KINDS = click.Choice([k.value for k in Kind if k is not Kind.WEB])


@click.group("credentials", cls=KysoGroup)
def credentials_group() -> None:
    """Credentials of agency systems and relay operators: API tokens, HMAC keys, certificates."""


@credentials_group.command("issue")
@click.option("--kind", type=STORED_KINDS, required=True, help="What kind of credential.")
@click.option("--agency", help="The agency it acts for (bearer, hmac with role agency).")
@click.option("--key", "keys", multiple=True, help="bearer: a seal it may use; repeatable.")
@click.option("--rate", default=DEFAULT_RATE, show_default=True, help="bearer: requests/min.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.AGENCY.value,
    show_default=True,
    help="hmac: whose key it is.",
)
@click.option("--serial", help="certificate: the serial (hex) of a certificate the PKI issued.")
@click.option("--label", default="", help="What the credential is for, e.g. 'iOffice'.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="hmac: where to write the key file.",
)
@click.pass_context
@exchange_errors
def credentials_issue(
    ctx: click.Context,
    kind: str,
    agency: str | None,
    keys: tuple[str, ...],
    rate: int,
    role: str,
    serial: str | None,
    label: str,
    out: Path | None,
) -> None:
    """Issue a credential; a secret is shown (or written) this once, only its hash is kept."""
    chosen = Kind(kind)
    _check_options(chosen, agency, keys, serial)
    if chosen is Kind.BEARER:
        from .cli_accounts import tokens_create

        ctx.invoke(tokens_create, agency=agency, keys=keys, name=label, rate=rate)
    elif chosen is Kind.HMAC:
        from .cli_exchange import agency_credentials

        ctx.invoke(agency_credentials, code=agency, role=role, label=label, out=out)
    else:
        _register_certificate(_obj(ctx), serial or "", label)


def _obj(ctx: click.Context) -> Context:
    obj = ctx.find_object(Context)
    assert obj is not None  # the main group made it
    return obj


def _check_options(
    kind: Kind, agency: str | None, keys: tuple[str, ...], serial: str | None
) -> None:
    """Refuse an option the kind does not take (rather than ignore it)."""
    if kind is Kind.BEARER and not (agency and keys):
        raise click.UsageError("a bearer token needs --agency and at least one --key")
    if kind is not Kind.BEARER and keys:
        raise click.UsageError("--key is for bearer tokens")
    if (kind is Kind.CERTIFICATE) != bool(serial):
        raise click.UsageError("--serial is for certificates, which need it")
    if kind is Kind.CERTIFICATE and agency:
        raise click.UsageError("a certificate's agency is the one the PKI issued it to")


def _register_certificate(obj: Context, serial: str, label: str) -> None:
    from certs.store import CertificateStore
    from exchange import audit as events

    try:
        number = int(serial.replace(":", ""), 16)
    except ValueError:
        raise click.UsageError(f"--serial {serial}: expected hexadecimal") from None
    store = Credentials(obj.engine, certificates=CertificateStore(obj.engine))
    credential = store.register_certificate(number, label)
    change = {"change": "credential-issued", "key_id": credential.id, "role": "agency"}
    obj.root.audit.record(events.ADMIN, _operator(), credential.agency or credential.id, change)
    console.print(f"certificate credential {credential.id} for {credential.agency}")


@credentials_group.command("list")
@click.option("--agency", help="Only this agency's credentials.")
@click.option("--kind", type=STORED_KINDS, help="Only this kind.")
@click.option("--all", "everything", is_flag=True, help="Revoked credentials too.")
@pass_context
def credentials_list(obj: Context, agency: str | None, kind: str | None, everything: bool) -> None:
    """List the active credentials (never their secrets); --all adds the revoked ones."""
    kinds = {Kind(kind)} if kind else ALL_KINDS
    found = Credentials(obj.engine).all(agency, kinds, active=not everything)
    rows = [_row(c) for c in found]
    headers = ("id", "kind", "role", "agency", "label", "created", "last used", "status")
    print_rows(headers, rows)


def _row(c: Credential) -> tuple[str, ...]:
    return (
        c.id,
        c.kind.value,
        c.role.value,
        c.agency or "",
        c.label,
        f"{c.created_at:%Y-%m-%d %H:%M}",
        f"{c.last_used_at:%Y-%m-%d %H:%M}" if c.last_used_at else "",
        "active" if c.active else "revoked",
    )


@credentials_group.command("revoke")
@click.argument("credential_id")
@click.pass_context
@exchange_errors
def credentials_revoke(ctx: click.Context, credential_id: str) -> None:
    """Revoke a credential of any kind, at once."""
    kind = Credentials(_obj(ctx).engine).get(credential_id).kind
    if kind is Kind.BEARER:
        from .cli_accounts import tokens_revoke

        ctx.invoke(tokens_revoke, token_id=credential_id)
    else:  # HMAC keys and certificates answer to the relay: revoked with an audit record
        from .cli_exchange import agency_revoke

        ctx.invoke(agency_revoke, key_id=credential_id)
