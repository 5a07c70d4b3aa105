"""`kyso sign pdf` and `kyso verify`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from signer.errors import InvalidDocument
from signer.levels import Level

from .cli_common import (
    Context,
    KysoCommand,
    console,
    default_tsa_url,
    pass_context,
)

if TYPE_CHECKING:
    from signer.policy import ValidationPolicy
    from signer.report import Report, SignatureReport

LEVELS = click.Choice([level.value for level in Level])
# The options `kyso sign pdf` and `kyso sign pdfs` share.
KEY_OPTION = click.option("--key", "key_ref", required=True, help="p12:PATH or a pkcs11: URI.")
LEVEL_OPTION = click.option("--level", default=Level.B_B.value, show_default=True, type=LEVELS)
TSA_URL_OPTION = click.option("--tsa-url", help="RFC 3161 TSA (default: the local PKI's).")
TRUST_OPTION = click.option(
    "--trust",
    type=click.Path(exists=True, path_type=Path),
    help="Trust anchors used to collect revocation data for B-LT/B-LTA.",
)


def _box(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter("expected x1,y1,x2,y2 in PDF points", param_hint="--box") from None
    if x2 <= x1 or y2 <= y1:
        raise click.BadParameter("x2 must exceed x1 and y2 must exceed y1", param_hint="--box")
    return (x1, y1, x2, y2)


def _policy(
    obj: Context, trust: Path | None, offline: bool, at: dt.datetime | None
) -> ValidationPolicy:
    """``--trust``'s certificates (revocation fetched by pyHanko); else Kyso's trust store,
    foreign revocation through KYSO_REVOCATION_ALLOW and Kyso's own from its CRL files."""
    from certs.layout import PkiLayout
    from certs.revocation_certvalidator import KysoFetcherBackend
    from certs.truststore import TrustSet
    from exchange.trust import trust_for_pki
    from signer.policy import ValidationPolicy

    if trust is not None:
        return ValidationPolicy.of_trust(TrustSet.from_path(trust), offline=offline, at=at)
    root = obj.root
    if offline or not PkiLayout(obj.settings.pki_dir).exists():
        trusted = root.trust_anchors.trust_set(at)
        backend = (
            None if offline else KysoFetcherBackend(root.revocation_fetcher, trusted.issuer_of)
        )
        return ValidationPolicy.of_trust(trusted, offline=offline, at=at, fetcher_backend=backend)
    store = trust_for_pki(
        obj.settings.pki_dir, lambda: root.trust_anchors.trust_set(at), root.revocation_fetcher
    )
    return dataclasses.replace(store.policy(), at=at)


def _key_passphrase(obj: Context, reference: str) -> bytes | None:
    return obj.root.passphrase if reference.startswith("p12:") else None


@click.command("pdf", cls=KysoCommand)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@KEY_OPTION
@LEVEL_OPTION
@click.option("--field", "field_name", help="Signature field name (default: next free).")
@click.option("--visible", is_flag=True, help="Draw a visible signature (Decree 30 styles).")
@click.option(
    "--style",
    default="person",
    show_default=True,
    type=click.Choice(["person", "seal", "attachment", "copy"]),
    help="Visible style: person (blue signature), seal (red seal over its left third),"
    " attachment or copy (text at the top right of page 1).",
)
@click.option(
    "--page",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Page of the visible signature (1 = first).",
)
@click.option("--box", help="x1,y1,x2,y2 in PDF points (origin bottom left).")
@click.option("--signature-image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seal-image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--document-code", help="Số, ký hiệu shown on attachment stamps, e.g. 15/QĐ-UBND.")
@click.option("--copy-type", help="SAO Y, SAO LỤC or TRÍCH SAO, for copy stamps.")
@click.option("--text-block", is_flag=True, help="Also print Ký bởi / Cơ quan / Thời gian ký.")
@click.option("--certify", is_flag=True, help="Certification signature (DocMDP: form filling).")
@click.option("--reason", help="Reason for signing.")
@click.option("--location", help="Where the document was signed.")
@TSA_URL_OPTION
@TRUST_OPTION
@pass_context
def sign_pdf(
    obj: Context,
    source: Path,
    output: Path,
    key_ref: str,
    level: str,
    field_name: str | None,
    visible: bool,
    style: str,
    page: int,
    box: str | None,
    signature_image: Path | None,
    seal_image: Path | None,
    document_code: str | None,
    copy_type: str | None,
    text_block: bool,
    certify: bool,
    reason: str | None,
    location: str | None,
    tsa_url: str | None,
    trust: Path | None,
) -> None:
    """Sign SOURCE (PAdES) into OUTPUT."""
    from signer.explain import vietnam_time
    from signer.pdf import PdfSignOptions, sign
    from signer.report import CertificateInfo

    if not source.is_file():
        raise InvalidDocument(f"{source} does not exist")
    chosen = Level(level)
    options = PdfSignOptions(
        level=chosen,
        field_name=field_name,
        reason=reason,
        location=location,
        certify=certify,
        tsa_url=tsa_url or default_tsa_url(obj.settings),
        policy=_policy(obj, trust, offline=False, at=None) if chosen.long_term else None,
    )
    with obj.open_key(key_ref) as key:
        if visible:
            from signer.stamps import StampKind, StampRequest

            signer_info = CertificateInfo.of(key.certificate)
            stamp = StampRequest(
                kind=StampKind(style),
                page=page - 1,
                box=_box(box),
                signature_image=signature_image,
                seal_image=seal_image,
                document_code=document_code,
                copy_type=copy_type,
                agency_name=signer_info.organization,
                signer_name=signer_info.common_name,
                text_block=text_block,
                font=obj.settings.stamp_font,
            )
            options = dataclasses.replace(options, stamp=stamp)
        with console.status(f"Signing {source.name} ({chosen})…"):
            result = sign(source, output, key, options)
    console.print(
        f"signed {output} [{result.level}] field {result.field_name} "
        f"by {result.signer.common_name} at {vietnam_time(result.signing_time)}"
    )


@click.command("pdfs", cls=KysoCommand)
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@KEY_OPTION
@LEVEL_OPTION
@click.option("--workers", type=click.IntRange(1, 64), help="Processes (default: one per core).")
@TSA_URL_OPTION
@TRUST_OPTION
@pass_context
def sign_pdfs(
    obj: Context,
    sources: tuple[Path, ...],
    out_dir: Path,
    key_ref: str,
    level: str,
    workers: int | None,
    tsa_url: str | None,
    trust: Path | None,
) -> None:
    """Sign every SOURCE into OUT_DIR (same file names, invisible signatures) on every core.

    A document that cannot be signed is named and the others go on; the exit code is then 1.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from signer.batch import sign_many
    from signer.pdf import PdfSignOptions

    _check_batch(sources, out_dir)
    chosen = Level(level)
    options = PdfSignOptions(
        level=chosen,
        tsa_url=tsa_url or default_tsa_url(obj.settings),
        policy=_policy(obj, trust, offline=False, at=None) if chosen.long_term else None,
    )
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"Signing ({chosen})", total=len(sources))
        items = sign_many(
            list(sources),
            out_dir,
            key_ref,
            _key_passphrase(obj, key_ref),
            options,
            workers=workers,
            progress=lambda done, _: progress.update(task, completed=done),
            pkcs11=obj.settings.pkcs11,
        )
    failed = [item for item in items if item.error is not None]
    console.print(f"{len(items) - len(failed)} of {len(items)} signed into {out_dir}")
    for item in failed:
        console.print(f"  not signed: {item.source}: {item.error}", style="red", markup=False)
    if failed:
        sys.exit(1)


def _check_batch(sources: tuple[Path, ...], out_dir: Path) -> None:
    """Every source exists, no two share a file name, and none would be overwritten."""
    seen: set[str] = set()
    for source in sources:
        if not source.is_file():
            raise InvalidDocument(f"{source} does not exist")
        if source.name in seen:
            raise InvalidDocument(f"two documents are named {source.name} (one output each)")
        seen.add(source.name)
        if (out_dir / source.name).resolve() == source.resolve():
            raise InvalidDocument(f"{source} is inside --out-dir: signing would overwrite it")


def _parse_time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            "use ISO 8601, e.g. 2026-11-25T14:07:09+07:00", param_hint="--at"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.command("verify", cls=KysoCommand)
@click.argument("document", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--content",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="For a detached .p7s signature: the file it signs.",
)
@click.option(
    "--trust",
    type=click.Path(exists=True, path_type=Path),
    help="Folder (or file) of trusted root certificates, PEM or DER, instead of the trust store.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--offline", is_flag=True, help="Never fetch OCSP/CRL; use what the file holds.")
@click.option("--at", "at_time", help="Validate as of this moment (ISO 8601).")
@click.option("-v", "--verbose", is_flag=True, help="Show the validation library's log.")
@pass_context
def verify_command(
    obj: Context,
    document: Path,
    content: Path | None,
    trust: Path | None,
    as_json: bool,
    offline: bool,
    at_time: str | None,
    verbose: bool,
) -> None:
    """Validate every signature of DOCUMENT (PDF, XML, or .p7s with --content).

    Exit code 0 only if every signature is TOTAL_PASSED; 1 otherwise; 2 for unusable input.
    """
    from signer.verify import verify

    if not verbose:
        logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
        logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    if not document.is_file():
        raise InvalidDocument(f"{document} does not exist")
    policy = _policy(obj, trust, offline, _parse_time(at_time))
    report = verify(document, policy, content)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_report(report)
    sys.exit(0 if report.passed else 1)


# By signer.report.Indication (a string enum).
_COLOURS = {"TOTAL_PASSED": "green", "INDETERMINATE": "yellow", "TOTAL_FAILED": "red"}


# The subject attributes the text view shows (certs.subject.SubjectInfo), in this order.
HOLDER_FIELDS = ("organisation", "unit", "title", "tax_code", "citizen_id", "old_id_card")


def _ca_line(signature: SignatureReport) -> str:
    """Which CA issued the signer's certificate, and whether Kyso trusts it."""
    from signer.report import SubIndication

    assert signature.signer is not None
    if signature.issuer_path:
        return f"issued under {' ← '.join(signature.issuer_path)} (trusted)"
    if signature.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
        return f"{signature.signer.issuer}: not in Kyso's trust store"
    return signature.signer.issuer


def print_report(report: Report) -> None:
    """The text view of a report (the JSON and the web page are the other two)."""
    from signer.explain import vietnam_time

    console.print(
        f"{report.document}  sha256:{report.document_sha256[:16]}…  "
        f"validated at {vietnam_time(report.validation_time)}"
    )
    for problem in report.problems:
        console.print(f"  ! {problem}")
    for n, s in enumerate(report.signatures, 1):
        sub = f" / {s.sub_indication}" if s.sub_indication else ""
        colour = _COLOURS[s.indication]
        console.print(f"\n[{colour}]#{n} {s.format} {s.identifier}: {s.indication}{sub}[/{colour}]")
        console.print(f"  {s.explanation_vi}")
        console.print(f"  {s.explanation_en}")
        if s.signer:
            console.print(
                f"  signer: {s.signer.common_name} · {s.signer.organization or ''} "
                f"· serial {s.signer.serial}"
            )
            holder = s.signer.subject_info.to_dict()
            shown = [f"{k}: {holder[k]}" for k in HOLDER_FIELDS if k in holder]
            if shown:
                console.print(f"  subject: {' · '.join(shown)}", markup=False)
            console.print(f"  CA: {_ca_line(s)}", markup=False)
        if s.claimed_signing_time:
            console.print(f"  claimed signing time: {vietnam_time(s.claimed_signing_time)}")
        if s.timestamp_time:
            console.print(f"  timestamp: {vietnam_time(s.timestamp_time)}")
        console.print(f"  level: {s.level or '-'} · coverage: {s.coverage or '-'}")
        for ev in s.revocation:
            console.print(f"  revocation: {ev.kind} {ev.status} ({ev.source})")
        for change in s.changes:
            mark = "allowed" if change.allowed else "NOT allowed"
            console.print(f"  revision {change.revision}: {change.description} ({mark})")
        for detail in s.details:
            console.print(f"  - {detail}")
