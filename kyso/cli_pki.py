"""`kyso pki …`: the local CA: create it, issue and revoke certificates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_common import Context, KysoGroup, console, pass_context, print_rows
from .secrets import passphrase

if TYPE_CHECKING:
    from certs.names import SubjectSpec
    from certs.profiles import Profile


@click.group("pki", cls=KysoGroup)
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
    from certs.store import serial_hex
    from directory import load_directory

    from .cli_exchange import _operator
    from .demo.pki import init_demo_pki

    target = directory or obj.settings.pki_dir
    agencies = load_directory(directory_file)
    secret = passphrase(obj.settings, confirm=True)
    with console.status("Creating the PKI…") as status:
        identities = init_demo_pki(
            obj.root,
            target,
            base_url,
            secret,
            agencies,
            _operator(),
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
    from certs.keystore import generate_in_token, store_certificate_in_token
    from certs.pkcs11uri import Pkcs11Uri
    from certs.store import serial_hex

    pki = obj.pki(directory)
    secret = obj.root.passphrase
    if key_ref:
        uri = Pkcs11Uri.parse(key_ref)
        public_key = generate_in_token(uri, key_type, obj.settings.pkcs11)
        issued = pki.issue(
            profile, subject, secret, name=name, public_key=public_key, key_ref=uri.redacted()
        )
        store_certificate_in_token(uri, issued.certificate, obj.settings.pkcs11)
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
    from certs.agencies import seal_name, seal_subject
    from certs.profiles import Profile
    from directory.store import AgencyStore

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
    from certs.agencies import person_name, person_subject
    from certs.profiles import Profile
    from directory import Officer
    from directory.store import AgencyStore

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
    from certs.pki import parse_reason
    from certs.store import parse_serial, serial_hex

    from .cli_exchange import record_revocation

    try:
        flag = parse_reason(reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reason") from None
    record = obj.pki(directory).revoke(parse_serial(serial), flag, obj.root.passphrase)
    record_revocation(obj, serial_hex(record.serial), record.common_name, flag.value)
    console.print(f"revoked {serial_hex(record.serial)} ({record.common_name}): {flag.value}")


@pki.command("list")
@_pki_dir_option
@click.option("--agency", help="Only this agency's certificates.")
@pass_context
def pki_list(obj: Context, directory: Path | None, agency: str | None) -> None:
    """List issued certificates with their status."""
    from certs.store import serial_hex

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
