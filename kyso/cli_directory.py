"""`kyso directory …`: the agency directory, and the certificates registered to its agencies.

Every change to a registration is appended to the relay's audit log
(:mod:`kyso.certificate_admin`), as ``kyso trust`` changes are.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_common import Context, KysoGroup, console, pass_context, print_rows

if TYPE_CHECKING:
    from directory.certificates import Registration


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


@directory.group("certificate", cls=KysoGroup)
def certificate() -> None:
    """Certificates registered to agencies: their seal, and the officers who sign for them."""


@certificate.command("add")
@click.argument("code")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--role",
    type=click.Choice(["seal", "officer"]),
    default="seal",
    show_default=True,
    help="The agency's seal, or an officer who signs for it.",
)
@click.option(
    "--by-subject",
    "by_subject",
    multiple=True,
    metavar="ATTR",
    help="Register every certificate of the same issuer with these subject attributes of "
    "FILE's (UID, O, OU, T, CN, SERIALNUMBER or an OID; repeat), not FILE's fingerprint.",
)
@click.option("--from", "valid_from", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (UTC).")
@pass_context
def certificate_add(
    obj: Context,
    code: str,
    file: Path,
    role: str,
    by_subject: tuple[str, ...],
    valid_from: dt.datetime | None,
    until: dt.datetime | None,
) -> None:
    """Register the certificate in FILE (PEM or DER) to the agency CODE."""
    from certs.truststore import load_one_certificate
    from directory.certificates import Role

    from .certificate_admin import day_end, day_start, register_certificate
    from .cli_exchange import _operator

    registration = register_certificate(
        obj.root.agency_certificates,
        obj.root.audit,
        _operator(),
        code,
        load_one_certificate(file),
        Role(role),
        by_subject=by_subject,
        valid_from=day_start(valid_from),
        valid_until=day_end(until),
    )
    console.print(f"#{registration.id}: {registration.subject} registered to {code} as {role}")


@certificate.command("list")
@click.argument("code", required=False)
@pass_context
def certificate_list(obj: Context, code: str | None) -> None:
    """List the registered certificates (of the agency CODE only, if given)."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        (
            str(r.id),
            r.agency,
            r.role.value,
            r.subject,
            r.issuer,
            r.serial,
            r.fingerprint[:16] if r.fingerprint else _match_text(r),
            f"{r.valid_from:%Y-%m-%d}",
            f"{r.valid_until:%Y-%m-%d}" if r.valid_until else "",
            "valid" if r.valid_at(now) else "not valid now",
            r.source,
        )
        for r in obj.root.agency_certificates.all(code)
    ]
    headers = ("id", "agency", "role", "subject", "issuer", "serial", "match", "from", "until")
    print_rows((*headers, "status", "source"), rows)


def _match_text(registration: Registration) -> str:
    return "subject " + ", ".join(f"{oid}={value}" for oid, value in registration.subject_match)


@certificate.command("remove")
@click.argument("registration_id", metavar="ID", type=int)
@pass_context
def certificate_remove(obj: Context, registration_id: int) -> None:
    """Remove the registration ID (see `list`)."""
    from .certificate_admin import remove_registration
    from .cli_exchange import _operator

    registration = remove_registration(
        obj.root.agency_certificates, obj.root.audit, _operator(), registration_id
    )
    console.print(f"#{registration_id} ({registration.subject}): no longer {registration.agency}'s")
