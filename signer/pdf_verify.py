"""PAdES validation: one :class:`SignatureReport` per signature, in ETSI terms.

pyHanko checks integrity, the CMS signature, the certificate path and revocation, and reviews
every later revision against its whitelist of allowed changes (form filling, signatures, DSS
and timestamp updates). This module turns that into indications an auditor can read, and adds
a per-revision account of what changed after each signature.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path
from typing import BinaryIO

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InsufficientRevinfoError,
    PathBuildingError,
    PathValidationError,
)

from certs.aio import run_sync
from certs.keystore import from_asn1

from .anchors import named
from .checkcache import CertificateCheck, CertificateCheckCache, CheckKey
from .errors import InvalidDocument
from .explain import with_explanation
from .levels import Level
from .pdf_input import MALFORMED_PDF_ERRORS, check_pdf_stream, read_pdf, unreadable_reason
from .policy import SELF_SIGNED_UNTRUSTED, ValidationPolicy, self_signed_untrusted
from .report import (
    CertificateInfo,
    Change,
    Coverage,
    DocumentFormat,
    Indication,
    Report,
    RevocationEvidence,
    SignatureFormat,
    SignatureReport,
    SubIndication,
)

_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: Coverage.ENTIRE_FILE,
    SignatureCoverageLevel.ENTIRE_REVISION: Coverage.ENTIRE_REVISION,
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: Coverage.PARTIAL,
    SignatureCoverageLevel.UNCLEAR: Coverage.UNCLEAR,
}

_CHANGE_TEXT = {
    ModificationLevel.NONE: "no change to the document's content",
    ModificationLevel.LTA_UPDATES: "validation data or document timestamp added (allowed)",
    ModificationLevel.FORM_FILLING: "form fields filled or signatures added (allowed)",
    ModificationLevel.ANNOTATIONS: "annotations added or changed (they can cover signed content)",
    ModificationLevel.OTHER: "content changed outside signatures and form fields",
}


# Besides the PDF parser's errors (MALFORMED_PDF_ERRORS): what signature validation raises
# on a damaged CMS or certificate. asn1crypto parses DER lazily, so a bad byte surfaces as a
# ValueError wherever a field is first read; cryptography refuses a damaged public key with
# UnsupportedAlgorithm. Each is a FORMAT_FAILURE of the one signature it happens in.
_MALFORMED: tuple[type[Exception], ...] = (
    *MALFORMED_PDF_ERRORS,
    SignatureValidationError,
    UnsupportedAlgorithm,
)
_NO_PATH: tuple[type[Exception], ...] = (PathValidationError, PathBuildingError, *_MALFORMED)


class _Evidence:
    """Revocation answers found in the document (DSS), to report where evidence came from.

    The DSS sits in a revision no signature covers, so it may hold anything: every answer is
    parsed in full here (``.native``), with the stream limits of its kind (4 MiB for an OCSP
    response), and a DSS with anything damaged or oversized in it is ignored as a whole and
    named in the report, rather than failing later inside path validation. Its certificates
    are not read: each signature carries its own.
    """

    def __init__(self, reader: PdfFileReader) -> None:
        self.ocsps: list[asn1_ocsp.OCSPResponse] = []
        self.crls: list[asn1_crl.CertificateList] = []
        self.problem: str | None = None
        try:
            if "/DSS" not in reader.root:
                return
            dss = reader.root["/DSS"]
            ocsps = [
                asn1_ocsp.OCSPResponse.load(data, strict=True)
                for data in _dss_streams(dss, "/OCSPs", DecodePurpose.OCSP_RESPONSE)
            ]
            crls = [
                asn1_crl.CertificateList.load(data, strict=True)
                for data in _dss_streams(dss, "/CRLs", DecodePurpose.CRL)
            ]
            for answer in (*ocsps, *crls):
                answer.native  # noqa: B018 - parse every field now
        except _MALFORMED as exc:
            self.problem = (
                "the document security store (DSS) is damaged and was ignored: "
                f"{unreadable_reason(exc)}"
            )
            return
        self.ocsps, self.crls = ocsps, crls


def _dss_streams(dss: object, key: str, purpose: DecodePurpose) -> list[bytes]:
    if not isinstance(dss, generic.DictionaryObject):
        raise PdfReadError("/DSS is not a dictionary")
    entries = dss.get(key, generic.ArrayObject())
    if not isinstance(entries, generic.ArrayObject):
        raise PdfReadError(f"{key} in the DSS is not an array")
    found = []
    for reference in entries:
        entry = reference.get_object()
        if not isinstance(entry, generic.StreamObject):
            raise PdfReadError(f"{key} in the DSS holds a {type(entry).__name__}, not a stream")
        found.append(entry.read_data(purpose))
    return found


def verify_pdf(source: Path | BinaryIO, policy: ValidationPolicy, name: str = "") -> Report:
    """Validate every signature of a PDF.

    Raises :class:`InvalidDocument` when the input is not a readable PDF at all; a readable PDF
    with broken signatures gets a report with TOTAL_FAILED verdicts instead.
    """
    if isinstance(source, Path):
        name = name or source.name
        with source.open("rb") as stream:
            return _verify_stream(stream, policy, name)
    return _verify_stream(source, policy, name or "document.pdf")


def _verify_stream(stream: BinaryIO, policy: ValidationPolicy, name: str) -> Report:
    size = check_pdf_stream(stream, name)
    digest = _digest(stream)
    stream.seek(0)
    reader = read_pdf(stream, name)
    try:
        signatures, timestamps, unreadable = _collect(reader)
    except _MALFORMED as exc:
        raise InvalidDocument(f"{name} is not a readable PDF: {unreadable_reason(exc)}") from None
    problems: list[str] = []
    if not (signatures or unreadable):
        problems.append("the document has no signatures")
    trailing = _unsigned_tail(reader, stream, size)
    tail_problem = (
        f"{trailing} bytes after the last revision belong to no revision and no signature"
    )
    if trailing:
        problems.append(tail_problem)
    evidence = _Evidence(reader)
    if evidence.problem:
        problems.append(evidence.problem)
    lta_times = _document_timestamp_times(timestamps, policy, evidence, problems)
    results = list(unreadable)
    for signature in signatures:
        result = _verify_one(reader, signature, policy, evidence, lta_times)
        if trailing and result.passed:
            # Viewers may still parse appended objects: the file is not what was signed.
            result = with_explanation(
                result.noted(tail_problem).finished(SubIndication.FORMAT_FAILURE)
            )
        results.append(result)
    signed = named(results, policy.anchors)
    return Report(name, digest, DocumentFormat.PDF, policy.moment, signed, tuple(problems))


_PDF_WHITESPACE = b" \t\r\n\x00\x0c"


def _unsigned_tail(reader: PdfFileReader, stream: BinaryIO, size: int) -> int:
    """How many bytes follow the last revision's ``startxref N %%EOF`` (0 for a clean file)."""
    last = reader.xrefs.total_revisions - 1
    end = reader.xrefs.get_xref_container_info(last).end_location
    if size - end > 64 * 1024:
        return size - end
    stream.seek(end)
    tail = stream.read()
    eof = tail.find(b"%%EOF")
    if eof < 0 or tail[:eof].count(b"startxref") != 1:
        return len(tail)
    return len(tail[eof + len(b"%%EOF") :].strip(_PDF_WHITESPACE))


def _collect(
    reader: PdfFileReader,
) -> tuple[list[EmbeddedPdfSignature], list[EmbeddedPdfSignature], list[SignatureReport]]:
    """Signatures, document timestamps, and reports for signature fields that cannot be read.

    pyHanko's own collection stops at the first malformed signature (or skips unknown
    sub-filters); an auditor must see every signature field, broken ones included.
    """
    signatures: list[EmbeddedPdfSignature] = []
    timestamps: list[EmbeddedPdfSignature] = []
    unreadable: list[SignatureReport] = []
    for fq_name, _, sig_field in enumerate_sig_fields(reader, filled_status=True):
        try:
            embedded = EmbeddedPdfSignature(reader, sig_field, fq_name)
            embedded.signed_revision  # noqa: B018 - parses /ByteRange against the file
            kind = embedded.sig_object_type
        except _MALFORMED as exc:
            failed = SignatureReport(
                SignatureFormat.PADES,
                str(fq_name),
                Indication.TOTAL_FAILED,
                SubIndication.FORMAT_FAILURE,
                details=(f"the signature cannot be parsed: {unreadable_reason(exc)}",),
            )
            unreadable.append(with_explanation(failed))
            continue
        (timestamps if kind == "/DocTimeStamp" else signatures).append(embedded)
    signatures.sort(key=lambda s: s.signed_revision)
    return signatures, timestamps, unreadable


def _digest(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _context(
    policy: ValidationPolicy, evidence: _Evidence, embedded: bool = True
) -> ValidationContext:
    """A context under ``policy``, holding the DSS's answers if ``embedded``."""
    if not embedded:
        return policy.validation_context()
    return policy.validation_context(crls=tuple(evidence.crls), ocsps=tuple(evidence.ocsps))


def _document_timestamp_times(
    timestamps: list[EmbeddedPdfSignature],
    policy: ValidationPolicy,
    evidence: _Evidence,
    problems: list[str],
) -> list[dt.datetime]:
    """Times of the valid document timestamps (B-LTA); invalid ones go to ``problems``."""
    times = []
    for timestamp in timestamps:
        try:
            status = run_sync(
                async_validate_pdf_timestamp(
                    timestamp, validation_context=_context(policy, evidence)
                )
            )
        except _MALFORMED as exc:
            problems.append(f"document timestamp {timestamp.field_name}: {unreadable_reason(exc)}")
            continue
        if status.intact and status.valid and status.coverage is not SignatureCoverageLevel.UNCLEAR:
            times.append(status.timestamp)
        else:
            problems.append(f"document timestamp {timestamp.field_name} is not valid")
    return times


def _verify_one(
    reader: PdfFileReader,
    signature: EmbeddedPdfSignature,
    policy: ValidationPolicy,
    evidence: _Evidence,
    lta_times: list[dt.datetime],
) -> SignatureReport:
    result = SignatureReport(
        SignatureFormat.PADES, str(signature.field_name), Indication.INDETERMINATE
    )
    signer: x509.Certificate | None = None
    try:
        signer = from_asn1(signature.signer_cert)
        result = dataclasses.replace(result, signer=CertificateInfo.of(signer))
    except _MALFORMED:
        pass  # no signer to name: the verdict says why
    try:
        result = _validated(signature, signer, policy, evidence, lta_times, result)
    except _MALFORMED as exc:
        why = f"the signature could not be processed: {unreadable_reason(exc)}"
        return with_explanation(result.noted(why).finished(SubIndication.FORMAT_FAILURE))
    return with_explanation(dataclasses.replace(result, changes=tuple(_changes(reader, signature))))


def _validated(
    signature: EmbeddedPdfSignature,
    signer: x509.Certificate | None,
    policy: ValidationPolicy,
    evidence: _Evidence,
    lta_times: list[dt.datetime],
    result: SignatureReport,
) -> SignatureReport:
    """The verdict on one signature, with revocation evidence chosen by its level.

    ETSI EN 319 102-1: a B-LT or B-LTA signature is validated on the evidence it carries,
    the DSS, with nothing fetched; only when that evidence is missing or insufficient
    (TRY_LATER), or the signature proves not to be long-term after all (its timestamp does
    not validate), is it validated afresh. Below B-LT, revocation is always fetched fresh
    (or read from ``policy.local``): the DSS, which no signature covers, never decides it.
    """
    if evidence.ocsps or evidence.crls:  # the level, hence the answer, is known only after
        embedded_policy, noted = _embedded_policy(signature, policy)
        embedded = _validated_under(
            signature, None, embedded_policy, evidence, True, lta_times, result
        )
        if (
            embedded.level is not None
            and embedded.level.long_term
            and embedded.sub_indication is not SubIndication.TRY_LATER
        ):
            return embedded.noted(*noted)
    return _validated_under(signature, signer, policy, evidence, False, lta_times, result)


def _embedded_policy(
    signature: EmbeddedPdfSignature, policy: ValidationPolicy
) -> tuple[ValidationPolicy, tuple[str, ...]]:
    """The policy of the DSS-only pass, and the detail that says which moment it used.

    With a signature timestamp, the signature is validated as of the time the timestamp
    claims, with nothing fetched and the DSS's answers accepted even though produced after
    it (pyHanko's ``retroactive_revinfo``, as older pyHanko validated PAdES-LT): the
    signer's certificate must have been valid then, and the evidence must show it not
    revoked. A revocation after that time does not invalidate a B-LT signature (ETSI EN
    319 102-1): the timestamp proves the signature existed before it. The claimed time is
    not trusted yet: if the timestamp does not validate the signature is not long-term, and
    this pass's verdict is discarded. Without a timestamp (or with one later than the
    moment asked for) the DSS is judged as of ``policy.moment``, as before.
    """
    offline = dataclasses.replace(policy, offline=True)
    claimed = _signature_timestamp_time(signature)
    if claimed is None or claimed > policy.moment:
        return offline, ()
    detail = (
        f"validated as of the signature timestamp {claimed.isoformat()} "
        "with the embedded revocation evidence"
    )
    return dataclasses.replace(offline, at=claimed, retroactive_revinfo=True), (detail,)


def _signature_timestamp_time(signature: EmbeddedPdfSignature) -> dt.datetime | None:
    """The time the signature's timestamp token claims (not validated here); None without
    exactly one readable token (pyHanko's own validation then says what is wrong)."""
    try:
        token = find_unique_cms_attribute(
            signature.signer_info["unsigned_attrs"], "signature_time_stamp_token"
        )
        tst_info = token["content"]["encap_content_info"]["content"].parsed
        gen_time = tst_info["gen_time"].native
    except (KeyError, ValueError, TypeError):  # incl. Nonexistent/MultivaluedAttributeError
        return None
    return gen_time if isinstance(gen_time, dt.datetime) else None


def _validated_under(
    signature: EmbeddedPdfSignature,
    signer: x509.Certificate | None,
    policy: ValidationPolicy,
    evidence: _Evidence,
    embedded: bool,
    lta_times: list[dt.datetime],
    result: SignatureReport,
) -> SignatureReport:
    """pyHanko's verdict under ``policy``, with the DSS's answers in its contexts if
    ``embedded``; ``signer``: keep or reuse a passing verdict (None: neither)."""
    checks = policy.checks
    cache_key = _verdict_key(signature, signer, policy, evidence)
    kept = checks.get(cache_key) if checks is not None and cache_key else None
    context = (
        _context(policy, evidence, embedded)
        if kept is None
        else policy.kept_verdict_context(signature.signer_cert)
    )
    status = run_sync(
        async_validate_pdf_signature(
            signature,
            signer_validation_context=context,
            ts_validation_context=_context(policy, evidence, embedded),
            diff_policy=DEFAULT_DIFF_POLICY,
        )
    )
    # Reads the certificates and answers validation used; asn1crypto parses them lazily.
    result = _from_status(result, status, evidence, context, lta_times, kept)
    if kept is None and checks is not None and cache_key is not None:
        _keep_verdict(checks, cache_key, result, status)
    return result


def _verdict_key(
    signature: EmbeddedPdfSignature,
    signer: x509.Certificate | None,
    policy: ValidationPolicy,
    evidence: _Evidence,
) -> CheckKey | None:
    """Where a passing verdict on ``signer`` is kept; None when none may be: no cache, a
    signer certificate that cannot be read, validating as of another moment, or revocation
    answers from the document itself (the verdict would then rest on its evidence)."""
    if policy.checks is None or signer is None or policy.at is not None:
        return None
    if evidence.crls or evidence.ocsps:
        return None
    certificates = [from_asn1(c) for c in signature.other_embedded_certs]
    return policy.checks.key(signer, [*certificates, *policy.extra_certs], "pades")


def _keep_verdict(
    checks: CertificateCheckCache,
    key: CheckKey,
    result: SignatureReport,
    status: PdfSignatureStatus,
) -> None:
    """Keep pyHanko's verdict on the signer when the signature passed on trust alone."""
    if result.sub_indication is not None or not status.trusted or status.validation_path is None:
        return
    chain = [from_asn1(cert) for cert in reversed(list(status.validation_path))]
    checks.keep(key, CertificateCheck(None, None, chain, list(result.revocation)))


def _from_status(
    result: SignatureReport,
    status: PdfSignatureStatus,
    evidence: _Evidence,
    context: ValidationContext,
    lta_times: list[dt.datetime],
    kept: CertificateCheck | None = None,
) -> SignatureReport:
    """The report of one signature from pyHanko's status; with ``kept``, the signer's chain
    and revocation status come from a kept passing verdict (pyHanko then trusted the
    signer's certificate directly and checked the rest)."""
    ts = status.timestamp_validity
    ts_ok = ts is not None and ts.intact and ts.valid and ts.trusted
    if ts is not None and not ts_ok:
        result = result.noted("the signature timestamp is not valid or not trusted")
    if kept is not None:
        chain = tuple(CertificateInfo.of(cert) for cert in kept.chain)
        revocation = tuple(kept.revocation)
    else:
        path = reversed(list(status.validation_path or ()))
        chain = tuple(CertificateInfo.of(from_asn1(cert)) for cert in path)
        revocation = tuple(_revocation(evidence, context, status))
    result = dataclasses.replace(
        result,
        claimed_signing_time=status.signer_reported_dt,
        timestamp_time=ts.timestamp if ts is not None else None,
        coverage=_COVERAGE.get(status.coverage, Coverage.UNCLEAR) if status.coverage else None,
        chain=chain,
        revocation=revocation,
    )
    result = dataclasses.replace(result, level=_level(ts_ok, evidence, result, lta_times))
    sub, details = _sub_indication(status, result, context)
    return result.noted(*details).finished(sub)


Verdict = tuple[SubIndication | None, tuple[str, ...]]
"""A sub-indication (None: passed) and the findings behind it."""


def _sub_indication(
    status: PdfSignatureStatus, result: SignatureReport, context: ValidationContext
) -> Verdict:
    if not status.intact:
        return SubIndication.HASH_FAILURE, (
            "the signed bytes do not match the digest in the signature",
        )
    if not status.valid:
        return SubIndication.SIG_CRYPTO_FAILURE, (
            "the signature value does not verify with the signer's key",
        )
    if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return SubIndication.FORMAT_FAILURE, (
            "the /ByteRange does not cover a whole revision of the file",
        )
    modification = status.diff_result
    # Annotations are refused too: an overlay annotation is how shadow attacks hide and
    # replace signed content without touching the signed revision.
    if isinstance(modification, SuspiciousModification) or status.modification_level in (
        ModificationLevel.ANNOTATIONS,
        ModificationLevel.OTHER,
        None,
    ):
        return SubIndication.FORMAT_FAILURE, (
            "a later revision changed the document in a way not allowed",
        )
    if status.docmdp_ok is False:
        return SubIndication.FORMAT_FAILURE, (
            "a later revision breaks the certification (DocMDP) permissions",
        )
    return _trust_sub_indication(status, result, context)


def _trust_sub_indication(
    status: PdfSignatureStatus, result: SignatureReport, context: ValidationContext
) -> Verdict:
    if status.revoked and status.revocation_details is not None:
        revoked_at = status.revocation_details.revocation_date
        revoked = f"the signer's certificate was revoked on {revoked_at.isoformat()}"
        if result.timestamp_time is not None and result.timestamp_time < revoked_at:
            # A timestamp proves the signature existed before the revocation (ETSI 5.6.2.4).
            return None, (revoked, "a timestamp proves the signature was made before revocation")
        claimed = result.claimed_signing_time
        if claimed is None or revoked_at <= claimed:
            return SubIndication.REVOKED, (revoked,)
        return SubIndication.REVOKED_NO_POE, (revoked,)
    if status.trusted:
        return None, ()
    signer = result.signer
    if signer is not None and not signer.not_before <= context.moment <= signer.not_after:
        # pyHanko calls this a general chain failure; ETSI names it (EN 319 102-1, 5.2.6).
        return SubIndication.OUT_OF_BOUNDS_NO_POE, (
            f"at the validation time {context.moment.isoformat()} the signer's certificate "
            f"is not valid ({signer.not_before.isoformat()} to {signer.not_after.isoformat()})"
            " and no valid timestamp proves the signature existed within that period",
        )
    if self_signed_untrusted(status.signing_cert, context):
        return SubIndication.NO_CERTIFICATE_CHAIN_FOUND, (SELF_SIGNED_UNTRUSTED,)
    name = str(getattr(status.trust_problem_indic, "name", ""))
    if name == SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE and _lacks_revinfo(status, context):
        return SubIndication.TRY_LATER, (
            "no OCSP or CRL answer was available for the certificate chain",
        )
    if name in SubIndication.__members__:
        return SubIndication[name], ()
    return SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, ()


def _lacks_revinfo(status: PdfSignatureStatus, context: ValidationContext) -> bool:
    """pyHanko folds missing revocation data into a general chain failure; tell them apart."""
    validator = CertificateValidator(status.signing_cert, validation_context=context)
    try:
        run_sync(validator.async_validate_path())
    except InsufficientRevinfoError:
        return True
    except _NO_PATH:
        return False
    return False


def _level(
    ts_ok: bool, evidence: _Evidence, result: SignatureReport, lta_times: list[dt.datetime]
) -> Level:
    if not ts_ok:
        return Level.B_B
    if not (evidence.ocsps or evidence.crls):
        return Level.B_T
    signed_at = result.timestamp_time or result.claimed_signing_time
    if signed_at and any(t >= signed_at for t in lta_times):
        return Level.B_LTA
    return Level.B_LT


def _revocation(
    evidence: _Evidence, context: ValidationContext, status: PdfSignatureStatus
) -> list[RevocationEvidence]:
    embedded = {r.dump() for r in evidence.ocsps}
    found = []
    for response in context.ocsps:
        basic = response["response_bytes"]["response"].parsed
        for single in basic["tbs_response_data"]["responses"]:
            found.append(
                RevocationEvidence(
                    kind="OCSP",
                    source="embedded" if response.dump() in embedded else "fetched",
                    certificate_serial=format(single["cert_id"]["serial_number"].native, "X"),
                    status=str(single["cert_status"].name),
                    produced_at=basic["tbs_response_data"]["produced_at"].native,
                )
            )
    embedded_crls = {c.dump() for c in evidence.crls}
    signer_serial = status.signing_cert.serial_number
    for crl in context.crls:
        tbs = crl["tbs_cert_list"]
        listed = {entry["user_certificate"].native for entry in tbs["revoked_certificates"]}
        found.append(
            RevocationEvidence(
                kind="CRL",
                source="embedded" if crl.dump() in embedded_crls else "fetched",
                certificate_serial=format(signer_serial, "X"),
                status="revoked" if signer_serial in listed else "not listed",
                produced_at=tbs["this_update"].native,
                issuer=tbs["issuer"].human_friendly,
            )
        )
    return found


def _changes(reader: PdfFileReader, signature: EmbeddedPdfSignature) -> list[Change]:
    """Classify each revision after the signed one against the signed revision."""
    changes = []
    base = reader.get_historical_resolver(signature.signed_revision)
    for revision in range(signature.signed_revision + 1, reader.xrefs.total_revisions):
        try:
            diff = DEFAULT_DIFF_POLICY.apply(
                old=base,
                new=reader.get_historical_resolver(revision),
                field_mdp_spec=signature.fieldmdp,
                doc_mdp=signature.docmdp_level,
            )
        except SuspiciousModification as exc:
            changes.append(Change(revision, False, f"disallowed change: {exc}"))
            continue
        except _MALFORMED as exc:
            reason = unreadable_reason(exc)
            changes.append(Change(revision, False, f"revision could not be analysed: {reason}"))
            continue
        level = diff.modification_level
        text = _CHANGE_TEXT[level]
        if diff.changed_form_fields:
            text += f": {', '.join(sorted(diff.changed_form_fields))}"
        allowed = level < ModificationLevel.ANNOTATIONS
        changes.append(Change(revision, allowed, text))
    return changes
