"""The exchange commands: an agency system's client and the relay's administration.

Client (talks to a relay over HTTP with the agency's credential file)::

    kyso send --as 000.01.21.H41 --to 000.00.21.H41,000.00.00.H41 cong-van.pdf
    kyso inbox --as 000.00.21.H41 [--save DIR] [--ack]
    kyso status MSG_ID --as 000.00.21.H41 --code accepted
    kyso trail MSG_ID --as 000.01.21.H41 [--verify]

Relay side (works on the local database and PKI)::

    kyso agency credentials 000.01.21.H41         # writes var/secrets/agency-….json (0600)
    kyso audit verify                             # names the first edited/inserted/deleted row
    kyso relay dead-letters
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from certs.clock import utcnow
from certs.layout import PkiLayout
from exchange import audit as events
from exchange.audit import verify_chain
from exchange.auth import RELAY_KINDS, Role
from exchange.errors import ExchangeError, UnknownMessage
from exchange.status_names import CODE_NAMES

from .cli_common import Context, KysoCommand, KysoGroup, console, pass_context, print_rows

# The relay client and the signing stack are imported by the commands that use them.
if TYPE_CHECKING:
    from certs.keystore import SigningKey
    from exchange.client import RelayClient
    from signer.policy import ValidationPolicy

F = TypeVar("F", bound=Callable[..., Any])


def exchange_errors(command: F) -> F:
    """Relay problems and exchange errors: one line on stderr, exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from exchange.client import RelayError

        try:
            return command(*args, **kwargs)
        except (RelayError, ExchangeError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return cast(F, wrapper)


def _operator() -> str:
    """Who ran a relay administration command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def credential_path(obj: Context, name: str) -> Path:
    return obj.settings.data_dir / "secrets" / f"agency-{name}.json"


def _relay_url(obj: Context) -> str:
    layout = PkiLayout(obj.settings.pki_dir)
    if layout.exists():
        return str(layout.read_manifest()["base_url"]).rstrip("/")
    return "http://127.0.0.1:8080"


def _client(obj: Context, agency: str, credentials: Path | None, url: str | None) -> RelayClient:
    from exchange.client import Credential, RelayClient

    path = credentials or credential_path(obj, agency)
    if not path.is_file():
        raise click.UsageError(
            f"no credential file {path}: create one with `kyso agency credentials {agency}`"
        )
    credential = Credential.load(path)
    if credential.agency != agency:
        raise click.UsageError(f"{path} holds the credential of {credential.agency}, not {agency}")
    return RelayClient(credential, url or obj.settings.relay_url)


def _key(obj: Context, agency: str, reference: str | None) -> SigningKey:
    return obj.open_key(reference or f"p12:{PkiLayout(obj.settings.pki_dir).key(f'seal-{agency}')}")


def _policy(obj: Context, trust: Path | None) -> ValidationPolicy:
    """``--trust`` roots, checked online; else the local PKI's root and its current CRLs."""
    from certs.truststore import load_certificates
    from exchange.trust import trust_for_pki
    from signer.policy import ValidationPolicy

    if trust is not None:
        return ValidationPolicy(tuple(load_certificates(trust)))
    if PkiLayout(obj.settings.pki_dir).exists():
        return trust_for_pki(obj.settings.pki_dir).policy()
    raise click.UsageError(f"no PKI in {obj.settings.pki_dir}: give --trust ROOT.pem")


def _client_options(f: F) -> F:
    options = [
        click.option("--as", "agency", required=True, help="Your agency's code."),
        click.option(
            "--credentials",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Credential file (default: $KYSO_DATA/secrets/agency-CODE.json).",
        ),
        click.option("--url", help="Relay URL (default: the credential's, or $KYSO_URL)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


# --- kyso send / inbox / status / trail -------------------------------------------------------


@click.command("send", cls=KysoCommand)
@_client_options
@click.option("--to", "to", required=True, help="Recipient codes, comma-separated.")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--subject", help="Trích yếu (default: the file names).")
@click.option("--number", help="Số (default: from the clock).")
@click.option("--notation", default="CV", show_default=True, help="Ký hiệu.")
@click.option("--type", "document_type", default="Công văn", show_default=True)
@click.option("--key", "key_ref", help="Signing key (default: the agency's demo seal).")
@click.option(
    "--doc-type",
    type=click.Choice(["new", "revoke", "update", "replace"]),
    default="new",
    show_default=True,
    help="BussinessDocType; revoke/update/replace need --changes.",
)
@click.option("--changes", "changes", help="The message id this package revokes/updates/replaces.")
@click.option("--reason", default="", help="BussinessDocReason.")
@click.option("--multipart/--inline", default=None, help="Transport (default: by size).")
@click.option("--idempotency-key", help="Resend with the same key to get the same receipt.")
@click.option("--receipt", type=click.Path(dir_okay=False, path_type=Path), help="Save it here.")
@click.option("--trust", type=click.Path(exists=True, path_type=Path), help="Trusted root(s).")
@pass_context
@exchange_errors
def send(
    obj: Context,
    agency: str,
    credentials: Path | None,
    url: str | None,
    to: str,
    files: tuple[Path, ...],
    subject: str | None,
    number: str | None,
    notation: str,
    document_type: str,
    key_ref: str | None,
    doc_type: str,
    changes: str | None,
    reason: str,
    multipart: bool | None,
    idempotency_key: str | None,
    receipt: Path | None,
    trust: Path | None,
) -> None:
    """Build an edXML package from FILES, sign it with the agency's seal, send it."""
    from exchange.client import (
        attachment_for,
        build_package,
        check_receipt,
        organization,
        response_for,
    )
    from signer import edxml, xml_signing
    from signer.report import CertificateInfo

    client = _client(obj, agency, credentials, url)
    directory = client.directory()
    recipients = [organization(directory, code.strip()) for code in to.split(",") if code.strip()]
    kind = edxml.BusinessDocType[doc_type.upper()]
    references = []
    if kind is not edxml.BusinessDocType.NEW:
        if not changes:
            raise click.UsageError(f"--doc-type {doc_type} needs --changes MESSAGE_ID")
        references.append(response_for(client.message(changes)))
    policy = _policy(obj, trust)
    with _key(obj, agency, key_ref) as key:
        unsigned = build_package(
            organization(directory, agency),
            recipients,
            [attachment_for(path, i) for i, path in enumerate(files)],
            subject=subject or ", ".join(p.name for p in files),
            number=number or utcnow().strftime("%H%M%S%f")[:10],
            notation=notation,
            signer_name=CertificateInfo.of(key.certificate).common_name,
            document_type=document_type,
            doc_type=kind,
            reason=reason,
            response_for=references,
        )
        signed = xml_signing.sign_xml(unsigned, key)
    sent = client.send(signed, idempotency_key, multipart)
    check = check_receipt(sent.receipt_xml, policy, sent.message_id, sent.package_sha256)
    if receipt:
        receipt.write_bytes(sent.receipt_xml)
    console.print(f"{'sent' if sent.created else 'already sent'}: message {sent.message_id}")
    console.print(f"  package SHA-256 {sent.package_sha256}")
    console.print(f"  receipt: {'valid' if check.ok else 'NOT VALID'} ({check.detail})")
    if sent.verification != "verified":
        console.print(
            f"  verification {sent.verification}: the relay could not check the signer's "
            "revocation yet; it delivers the package once verified and sends a status (01 "
            "delivered, 02 refused)"
        )
    if not check.ok:
        sys.exit(1)


@click.command("inbox", cls=KysoCommand)
@_client_options
@click.option("--after", default=0, show_default=True, help="Cursor: items after this id.")
@click.option("--limit", default=100, show_default=True)
@click.option("--save", type=click.Path(file_okay=False, path_type=Path), help="Save items here.")
@click.option("--ack", is_flag=True, help="Acknowledge each item (after saving it).")
@click.option("--json", "as_json", is_flag=True, help="Print the relay's JSON.")
@pass_context
@exchange_errors
def inbox(
    obj: Context,
    agency: str,
    credentials: Path | None,
    url: str | None,
    after: int,
    limit: int,
    save: Path | None,
    ack: bool,
    as_json: bool,
) -> None:
    """List (and optionally save and acknowledge) the agency's unacknowledged items."""
    client = _client(obj, agency, credentials, url)
    page = client.inbox(after, limit)
    for item in page["items"]:
        if save:
            save.mkdir(parents=True, exist_ok=True)
            href = item["package"] if item["kind"] == "message" else item["href"]
            suffix = "package" if item["kind"] == "message" else f"status-{item['code']}"
            (save / f"{item['id']:08d}-{item['message_id']}-{suffix}.xml").write_bytes(
                client.download(href)
            )
        if ack:
            client.ack(item["id"])
    if as_json:
        click.echo(json.dumps(page, ensure_ascii=False, indent=2))
        return
    rows = [
        (
            str(i["id"]),
            i["kind"],
            i["message_id"],
            i["from"],
            i.get("code") or "",
            i.get("meaning") or i.get("subject", ""),
        )
        for i in page["items"]
    ]
    print_rows(("id", "kind", "message", "from", "code", "subject / status"), rows)
    console.print(f"next cursor: {page['next']}{' (acknowledged)' if ack and rows else ''}")


@click.command("status", cls=KysoCommand)
@click.argument("message_id")
@_client_options
@click.option(
    "--code",
    required=True,
    help="01…16 or a name: " + ", ".join(sorted(set(CODE_NAMES))) + ".",
)
@click.option("--reason", default="", help="Description (required for refused, 02).")
@click.option("--staff", default="", help="Who handled it.")
@click.option("--key", "key_ref", help="Signing key (default: the agency's demo seal).")
@pass_context
@exchange_errors
def status(
    obj: Context,
    message_id: str,
    agency: str,
    credentials: Path | None,
    url: str | None,
    code: str,
    reason: str,
    staff: str,
    key_ref: str | None,
) -> None:
    """Sign and send a status message about MESSAGE_ID."""
    from exchange.client import build_status, organization
    from signer import edxml, xml_signing

    if code not in CODE_NAMES and code not in {c.value for c in edxml.StatusCode}:
        raise click.BadParameter(f"unknown status {code!r}", param_hint="--code")
    client = _client(obj, agency, credentials, url)
    message = client.message(message_id)
    sender = organization(client.directory(), agency)
    with _key(obj, agency, key_ref) as key:
        signed = xml_signing.sign_xml(build_status(message, sender, code, reason, staff), key)
    result = client.post_status(message_id, signed)
    console.print(
        f"status {result['code']} ({result['meaning']}) recorded as #{result['status_id']}, "
        f"delivered to {', '.join(result['delivered_to'])}"
    )


@click.command("trail", cls=KysoCommand)
@click.argument("message_id")
@_client_options
@click.option("--verify", is_flag=True, help="Download and verify every signed document.")
@click.option("--save", type=click.Path(file_okay=False, path_type=Path), help="Save them here.")
@click.option("--trust", type=click.Path(exists=True, path_type=Path), help="Trusted root(s).")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@exchange_errors
def trail(
    obj: Context,
    message_id: str,
    agency: str,
    credentials: Path | None,
    url: str | None,
    verify: bool,
    save: Path | None,
    trust: Path | None,
    as_json: bool,
) -> None:
    """Show a message's signed lifecycle: the relay's receipt, then every status."""
    from exchange.client import verify_trail

    client = _client(obj, agency, credentials, url)
    found = client.trail(message_id)
    if save:
        save.mkdir(parents=True, exist_ok=True)
        for n, event in enumerate(found["trail"]):
            name = f"{n:03d}-{event['kind']}-{event['code']}.xml"
            (save / name).write_bytes(client.download(event["href"]))
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        message = found["message"]
        console.print(f"{message['id']}  {message['document_id']}  {message['subject']}")
        rows = [
            (e["at"], e["kind"], e["code"], e["meaning"], e["from"], e["sha256"][:16])
            for e in found["trail"]
        ]
        print_rows(("at", "kind", "code", "meaning", "from", "sha256"), rows)
    if verify:
        checks = verify_trail(client, found, _policy(obj, trust))
        for check in checks:
            console.print(f"  {'✓' if check.ok else '✗'} {check.what}: {check.detail}")
        if not all(c.ok for c in checks):
            sys.exit(1)


# --- kyso agency: credentials ------------------------------------------------------------------


@click.group("agency", cls=KysoGroup)
def agency_group() -> None:
    """Agency systems' credentials for the exchange relay."""


def issue_credential(
    obj: Context,
    role: Role,
    agency: str | None,
    label: str,
    out: Path,
) -> Path:
    """Create a credential, record it in the audit log, write its 0600 JSON file."""
    from exchange.client import Credential

    record, secret = obj.root.authenticator.issue(role, agency, label)
    Credential(record.key_id, secret, role.value, agency, _relay_url(obj)).save(out)
    obj.root.audit.record(
        events.ADMIN,
        _operator(),
        agency or record.key_id,
        {"change": "credential-issued", "key_id": record.key_id, "role": role.value},
    )
    return out


@agency_group.command("credentials")
@click.argument("code", required=False)
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.AGENCY.value,
    show_default=True,
)
@click.option("--label", default="", help="What the credential is for.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write it.")
@pass_context
@exchange_errors
def agency_credentials(
    obj: Context, code: str | None, role: str, label: str, out: Path | None
) -> None:
    """Create an API key for agency CODE (or an admin/auditor key) and write it to a file."""
    chosen = Role(role)
    if chosen is Role.AGENCY and not code:
        raise click.UsageError("give the agency's CODE")
    name = code if chosen is Role.AGENCY else chosen.value
    target = out or credential_path(obj, str(name))
    issue_credential(obj, chosen, code if chosen is Role.AGENCY else None, label, target)
    console.print(f"credential for {name} written to {target} (keep it secret, mode 0600)")


@agency_group.command("list")
@pass_context
def agency_list(obj: Context) -> None:
    """List credentials (never their secrets)."""
    rows = [
        (
            c.key_id,
            c.role.value,
            c.agency or "",
            c.label,
            f"{c.created_at:%Y-%m-%d %H:%M}",
            "revoked" if c.revoked_at else "active",
        )
        for c in obj.root.authenticator.all(kinds=RELAY_KINDS)
    ]
    print_rows(("key id", "role", "agency", "label", "created", "status"), rows)


@agency_group.command("revoke")
@click.argument("key_id")
@pass_context
def agency_revoke(obj: Context, key_id: str) -> None:
    """Revoke a credential at once."""
    credential = obj.root.authenticator.revoke(key_id)
    obj.root.audit.record(
        events.ADMIN,
        _operator(),
        credential.agency or key_id,
        {"change": "credential-revoked", "key_id": key_id},
    )
    console.print(f"credential {key_id} revoked")


# --- kyso audit --------------------------------------------------------------------------------


@click.group("audit", cls=KysoGroup)
def audit_group() -> None:
    """The relay's tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-timestamps", is_flag=True, help="Do not check the checkpoints' TSA tokens.")
@pass_context
def audit_verify(obj: Context, as_json: bool, no_timestamps: bool) -> None:
    """Recompute the hash chain and the checkpoints; exit 1 naming the first bad row."""
    from exchange.trust import trust_for_pki

    log = obj.root.audit
    checker = None if no_timestamps else trust_for_pki(obj.settings.pki_dir).check_token
    verdict = verify_chain(log, checker)
    if as_json:
        click.echo(json.dumps(verdict.to_dict(), ensure_ascii=False, indent=2))
    elif verdict.ok:
        console.print(
            f"audit log intact: {verdict.rows} rows, head {verdict.head_seq}, "
            f"{verdict.checkpoints} timestamped checkpoints"
        )
        for note in verdict.notes:
            console.print(f"  note: {note}")
    else:
        click.echo(f"audit log TAMPERED: first bad row {verdict.first_bad_seq}", err=True)
        for problem in verdict.problems:
            click.echo(f"  {problem}", err=True)
    if not verdict.ok:
        sys.exit(1)


@audit_group.command("show")
@click.option("--after", default=0, show_default=True)
@click.option("--limit", default=50, show_default=True)
@pass_context
def audit_show(obj: Context, after: int, limit: int) -> None:
    """Print audit rows (read-only)."""
    rows = [
        (str(e.seq), e.at, e.event, e.actor, e.subject, e.data[:80], e.hash[:12])
        for e in obj.root.audit.events(after, limit)
    ]
    print_rows(("seq", "at", "event", "actor", "subject", "data", "hash"), rows)


@audit_group.command("checkpoint")
@pass_context
def audit_checkpoint(obj: Context) -> None:
    """Timestamp the head of the chain now (the server does it every minute)."""
    from certs.tsa import stamp_digest

    tsa = obj.root.pki_services.tsa
    made = obj.root.audit.checkpoint(lambda digest: stamp_digest(tsa, digest))
    console.print(f"checkpoint at row {made.seq}" if made else "nothing new to checkpoint")


# --- kyso relay: dead letters ------------------------------------------------------------------


@click.group("relay", cls=KysoGroup)
def relay_group() -> None:
    """The relay's deliveries."""


@relay_group.command("dead-letters")
@pass_context
def relay_dead_letters(obj: Context) -> None:
    """Pushes that failed for longer than KYSO_DEAD_LETTER_AFTER."""
    rows = [
        (str(d.id), d.agency, d.kind, d.message_id, str(d.attempts), d.last_error or "")
        for d in obj.root.mailbox_store.dead_letters()
    ]
    print_rows(("id", "agency", "kind", "message", "attempts", "last error"), rows)


@relay_group.command("retry")
@click.argument("delivery_id", type=int)
@pass_context
def relay_retry(obj: Context, delivery_id: int) -> None:
    """Push a dead letter again."""
    from exchange.mailbox import revive_dead_letter

    root = obj.root
    try:
        revive_dead_letter(root.mailbox_store, root.audit, _operator(), delivery_id, utcnow())
    except UnknownMessage as exc:
        raise click.UsageError(str(exc)) from None
    console.print(f"delivery {delivery_id} will be pushed again")


# --- the demo and other commands' audit events -------------------------------------------------


@click.command("exchange", cls=KysoCommand)
@pass_context
def demo_exchange(obj: Context) -> None:
    """Create a relay credential for every demo agency (if missing) under var/secrets/."""
    made = 0
    wanted: list[tuple[Role, str | None, str]] = [
        (Role.AGENCY, agency.code, agency.code) for agency in obj.root.agencies.directory()
    ]
    wanted += [(role, None, role.value) for role in (Role.ADMIN, Role.AUDITOR)]
    for role, code, name in wanted:
        target = credential_path(obj, name)
        if not target.exists():
            issue_credential(obj, role, code, "demo", target)
            made += 1
    console.print(
        f"{made} relay credentials created in {obj.settings.data_dir / 'secrets'} "
        "(kyso send --as CODE …)"
    )


def record_revocation(obj: Context, serial: str, common_name: str, reason: str) -> None:
    """`kyso pki revoke` also goes into the audit log."""
    obj.root.audit.record(
        events.REVOKED,
        _operator(),
        serial,
        {"common_name": common_name, "reason": reason},
    )
