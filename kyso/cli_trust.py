"""`kyso trust …`: the CAs Kyso trusts (the trust store of :mod:`certs.trust_anchors`); every
change is audited (:mod:`kyso.trust_admin`).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_common import Context, KysoGroup, console, pass_context, print_rows
from .trust_admin import add_anchor, remove_anchor, trust_local_pki

if TYPE_CHECKING:
    pass


@click.group("trust", cls=KysoGroup)
def trust() -> None:
    """The CAs Kyso trusts: trust roots and intermediates."""


def _actor() -> str:
    from .cli_exchange import _operator

    return _operator()


@trust.command("list")
@pass_context
def trust_list(obj: Context) -> None:
    """List the trusted roots and intermediates, with their validity."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        (
            s.anchor.name,
            s.anchor.role.value,
            s.anchor.certificate.subject.rfc4514_string(),
            f"{s.anchor.not_before:%Y-%m-%d}",
            f"{s.anchor.not_after:%Y-%m-%d}",
            "trusted" if s.anchor.valid_at(now) else "expired",
            s.anchor.fingerprint[:16],
        )
        for s in obj.root.trust_anchors.all()
    ]
    print_rows(("name", "role", "subject", "from", "until", "status", "sha-256"), rows)


@trust.command("add")
@click.argument("name", required=False)
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--role",
    type=click.Choice(["root", "intermediate"]),
    help="Default: root if the certificate is self-signed, else intermediate.",
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Stop trusting it after this day (UTC), before the certificate expires.",
)
@click.option("--local-pki", is_flag=True, help="Add Kyso's own CA (root and issuing CA) instead.")
@pass_context
def trust_add(
    obj: Context,
    name: str | None,
    file: Path | None,
    role: str | None,
    until: dt.datetime | None,
    local_pki: bool,
) -> None:
    """Trust the CA certificate in FILE (PEM or DER) under NAME."""
    from certs.truststore import AnchorRole, load_one_certificate

    if local_pki:
        added = trust_local_pki(obj.root, _actor(), obj.settings.pki_dir)
        console.print(f"added: {', '.join(added)}" if added else "Kyso's CA is trusted already")
        return
    if not name or file is None:
        raise click.UsageError("give NAME and FILE (or --local-pki)")
    stored = add_anchor(
        obj.root,
        _actor(),
        name,
        load_one_certificate(file),
        AnchorRole(role) if role else None,
        until.replace(hour=23, minute=59, second=59, tzinfo=dt.UTC) if until else None,
    )
    anchor = stored.anchor
    console.print(f"{anchor.name}: {anchor.role.value} {anchor.fingerprint} trusted")


@trust.command("remove")
@click.argument("name")
@pass_context
def trust_remove(obj: Context, name: str) -> None:
    """Stop trusting the entry NAME."""
    remove_anchor(obj.root, _actor(), name)
    console.print(f"{name} is no longer trusted")


@trust.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def trust_check(obj: Context, file: Path) -> None:
    """Name the trusted CA that issued the certificate in FILE and check its revocation online
    (exit 1 unless trusted and not revoked)."""
    from certs.revocation_check import RevocationGood, check_path
    from certs.truststore import load_one_certificate

    certificate = load_one_certificate(file)
    console.print(f"{file.name}: {certificate.subject.rfc4514_string()}")
    path = obj.root.trust_anchors.trust_set().anchor_path(certificate)
    if path is None:
        console.print("  no chain to a CA in the trust store: not trusted")
        sys.exit(1)
    console.print("  issued under " + " ← ".join(f"{a.name} ({a.role.value})" for a in path))
    chain = [certificate, *(a.certificate for a in path)]
    results = check_path(chain, obj.root.revocation_fetcher)
    for cert, result in zip(chain, results, strict=False):
        console.print(f"  {cert.subject.rfc4514_string()}: {_revocation_text(result)}")
    sys.exit(0 if isinstance(results[0], RevocationGood) else 1)


def _revocation_text(result: object) -> str:
    from certs.revocation_check import (
        RevocationGood,
        RevocationRevoked,
        RevocationUnavailable,
        RevocationUnknown,
    )

    if isinstance(result, RevocationGood):
        return f"good ({result.source} {result.url})"
    if isinstance(result, RevocationRevoked):
        return f"REVOKED at {result.revoked_at:%Y-%m-%d %H:%M} ({result.reason or 'no reason'})"
    if isinstance(result, RevocationUnknown):
        return f"unknown: {result.detail}"
    assert isinstance(result, RevocationUnavailable)
    return "unavailable: " + "; ".join(result.problems)
