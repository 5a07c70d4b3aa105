"""PAdES signing (B-B, B-T, B-LT, B-LTA) on pyHanko.

``sign`` appends one incremental revision holding the signature, so earlier signatures stay
valid; B-T and above get a signature timestamp from Kyso's TSA, B-LT embeds the OCSP/CRL answers
in the DSS, B-LTA adds a document timestamp over everything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from certs.clock import utcnow
from certs.keystore import SigningKey

from .errors import InvalidDocument, SigningFailed
from .levels import Level
from .pdf_input import check_pdf_stream, read_pdf
from .policy import ValidationPolicy
from .report import CertificateInfo
from .stamp_style import Appearance
from .stamps import StampRequest, build_appearance

__all__ = ["Appearance", "PdfSignOptions", "PdfSignResult", "sign"]

# Room reserved in /Contents beyond the certificates, so pyHanko need not sign a dummy CMS to
# estimate the size; kept tight because every verifier parses this hex string byte by byte.
CMS_OVERHEAD_BYTES = 6 * 1024  # signed attributes, signature value, structure
TIMESTAMP_TOKEN_BYTES = 10 * 1024  # a TSA token with the TSA's chain


def reserved_bytes(key: SigningKey, level: Level) -> int:
    """The CMS size to reserve for ``key`` at ``level``."""
    certificates = (key.certificate, *key.chain)
    size = CMS_OVERHEAD_BYTES + sum(len(c.public_bytes(Encoding.DER)) for c in certificates)
    size += TIMESTAMP_TOKEN_BYTES if level.timestamped else 0
    return size + size % 2  # pyHanko wants an even number


@dataclass(frozen=True)
class PdfSignOptions:
    """Everything but the key and the files: what kind of signature to make."""

    level: Level = Level.B_B
    field_name: str | None = None
    reason: str | None = None
    location: str | None = None
    contact: str | None = None
    certify: bool = False
    docmdp: fields.MDPPerm = fields.MDPPerm.FILL_FORMS
    # A Decree 30 stamp, laid out against the document being signed (see signer.stamps) ...
    stamp: StampRequest | None = None
    # ... or a ready-made appearance (what build_appearance returns).
    appearance: Appearance | None = None
    tsa_url: str | None = None
    # ... or a time stamper to use instead of the URL (the server's own TSA, called in process).
    timestamper: TimeStamper | None = None
    # B-LT/B-LTA: trust anchors and online access used to collect revocation answers.
    policy: ValidationPolicy | None = None
    stamp_params: dict[str, str] = field(default_factory=dict)
    # The time the signature claims and its stamp shows (tests move it instead of sleeping).
    clock: Callable[[], dt.datetime] = field(default=utcnow, compare=False)


@dataclass(frozen=True)
class PdfSignResult:
    """What was produced."""

    output: Path
    field_name: str
    level: Level
    signer: CertificateInfo
    signing_time: dt.datetime
    size: int
    sha256: str


def _metadata(options: PdfSignOptions, field_name: str) -> signers.PdfSignatureMetadata:
    long_term = options.level.long_term
    if long_term and options.policy is None:
        raise SigningFailed(f"{options.level} needs trust anchors to collect revocation data")
    return signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=options.reason,
        location=options.location,
        contact_info=options.contact,
        certify=options.certify,
        docmdp_permissions=options.docmdp,
        embed_validation_info=long_term,
        use_pades_lta=options.level is Level.B_LTA,
        validation_context=options.policy.validation_context() if long_term and options.policy
        else None,
    )  # fmt: skip


def _next_field_name(writer: IncrementalPdfFileWriter) -> str:
    existing = {name for name, _, _ in fields.enumerate_sig_fields(writer)}
    index = 1
    while f"Signature{index}" in existing:
        index += 1
    return f"Signature{index}"


def _check_new_visible_field_allowed(
    writer: IncrementalPdfFileWriter, field_name: str, name: str
) -> None:
    """Refuse a new visible signature field in a certified document.

    A certification (DocMDP) allows signing, not new widgets on the page: validators (pyHanko,
    and any that resists the "sneaky signature" attack) would fail the certification signature.
    Signing invisibly, or into an empty field the certifier created, is allowed.
    """
    perms = writer.root.get("/Perms")
    if perms is None or "/DocMDP" not in perms:
        return
    empty = {n for n, value, _ in fields.enumerate_sig_fields(writer) if value is None}
    if field_name not in empty:
        raise SigningFailed(
            f"{name} is certified (DocMDP): a new visible signature would invalidate its "
            "certification; sign it without a visible stamp, or into an empty signature field"
        )


def _timestamper(options: PdfSignOptions) -> TimeStamper | None:
    if not options.level.timestamped:
        return None
    if options.timestamper is not None:
        return options.timestamper
    if not options.tsa_url:
        raise SigningFailed(f"{options.level} needs a time-stamping authority URL")
    return HTTPTimeStamper(options.tsa_url, timeout=30)


def sign(source: Path, output: Path, key: SigningKey, options: PdfSignOptions) -> PdfSignResult:
    """Sign ``source`` into ``output`` (written atomically; ``source`` is never modified).

    Raises :class:`InvalidDocument` for input pyHanko cannot read (not a PDF, encrypted,
    truncated) and :class:`SigningFailed` when the TSA or revocation services fail.
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=".signing-", suffix=".pdf")
    except OSError as exc:
        raise SigningFailed(f"cannot write into {output.parent}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with source.open("rb") as infile, os.fdopen(fd, "w+b") as outfile:
            signed = sign_stream(infile, outfile, key, options, source.name)
            outfile.flush()
            os.fsync(outfile.fileno())
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SigningFailed(f"signing {source.name} failed: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return PdfSignResult(
        output=output,
        field_name=signed.field_name,
        level=options.level,
        signer=CertificateInfo.of(key.certificate),
        signing_time=signed.signing_time,
        size=output.stat().st_size,
        sha256=_sha256(output),
    )


@dataclass(frozen=True)
class SignedRevision:
    """What :func:`sign_stream` added to the document."""

    field_name: str
    signing_time: dt.datetime


def sign_stream(
    source: BinaryIO, output: BinaryIO, key: SigningKey, options: PdfSignOptions, name: str
) -> SignedRevision:
    """Sign the PDF read from ``source`` into ``output`` (both seekable binary streams).

    The core of :func:`sign`, for callers that keep documents in memory (the API, batch jobs).
    """
    check_pdf_stream(source, name)
    reservation = _reservation(key, options.level)
    for _attempt in range(3):
        source.seek(0)
        output.seek(0)
        output.truncate()
        try:
            signed = _sign_once(source, output, key, options, name, reservation)
        except _ReservationTooSmall:
            reservation *= 2  # a longer chain or TSA token than expected: retry, remember
            continue
        _RESERVATIONS[_reservation_key(key, options.level)] = reservation
        return signed
    raise SigningFailed(f"signing {name} failed: the signature does not fit in {reservation} bytes")


class _ReservationTooSmall(Exception):
    pass


# Learned CMS sizes per (certificate, level): the first signature may have to retry once.
_RESERVATIONS: dict[tuple[bytes, Level], int] = {}


def _reservation_key(key: SigningKey, level: Level) -> tuple[bytes, Level]:
    return key.certificate.fingerprint(hashes.SHA256()), level


def _reservation(key: SigningKey, level: Level) -> int:
    return _RESERVATIONS.get(_reservation_key(key, level)) or reserved_bytes(key, level)


def _sign_once(
    source: BinaryIO,
    output: BinaryIO,
    key: SigningKey,
    options: PdfSignOptions,
    name: str,
    reservation: int,
) -> SignedRevision:
    try:
        # The same bounded, checked reader as verification: a hostile file must not cost
        # unbounded memory at signing time either.
        writer = IncrementalPdfFileWriter.from_reader(read_pdf(source, name))
        field_name = options.field_name or _next_field_name(writer)
        if options.stamp is not None or options.appearance is not None:
            _check_new_visible_field_allowed(writer, field_name, name)
        signing_time = options.clock()
        if options.stamp is not None:
            appearance, params = build_appearance(options.stamp, writer.prev, signing_time)
            options = dataclasses.replace(options, appearance=appearance, stamp_params=params)
        _sign_into(writer, output, key, options, field_name, signing_time, reservation)
    except PdfError as exc:
        raise InvalidDocument(f"{name} is not a readable PDF: {exc}") from None
    except SigningError as exc:
        if "larger than expected" in str(exc):  # pyHanko's message for an overflowing /Contents
            raise _ReservationTooSmall from None
        raise SigningFailed(f"signing {name} failed: {exc}") from None
    except TimestampRequestError as exc:
        raise SigningFailed(f"signing {name} failed: {exc}") from None
    return SignedRevision(field_name, signing_time)


def _sign_into(
    writer: IncrementalPdfFileWriter,
    outfile: object,
    key: SigningKey,
    options: PdfSignOptions,
    field_name: str,
    signing_time: dt.datetime,
    reservation: int,
) -> None:
    appearance = options.appearance
    field_spec = None
    if appearance is not None:
        # pyHanko types the box as ints, but writes whatever numbers it is given.
        box = tuple(round(v) for v in appearance.box)
        field_spec = fields.SigFieldSpec(field_name, on_page=appearance.page, box=box)  # type: ignore[arg-type]
    pdf_signer = _PdfSignerAt(
        signing_time,
        _metadata(options, field_name),
        signer=key.signer,
        timestamper=_timestamper(options),
        stamp_style=appearance.style if appearance else None,
        new_field_spec=field_spec,
    )
    pdf_signer.sign_pdf(
        writer,
        output=outfile,
        bytes_reserved=reservation,
        appearance_text_params=options.stamp_params or None,
    )


class _PdfSignerAt(signers.PdfSigner):
    """A PdfSigner whose signing time is fixed by the caller.

    pyHanko takes the time itself when the session starts and uses it for the CMS signingTime,
    /M and the stamp; pinning it makes the result, the signature and the page agree.
    """

    def __init__(self, signing_time: dt.datetime, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
