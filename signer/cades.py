"""Detached CAdES signatures (ETSI EN 319 122) for any file, and the checks XAdES shares.

Signing: :func:`sign_cms` makes a detached CMS ``SignedData`` with the CAdES baseline
signed attributes (content-type, message-digest, signing-time, signing-certificate-v2);
level B-T adds a signature timestamp token from an RFC 3161 TSA. pyHanko builds the ASN.1.

Verification: :func:`verify_cms` returns the same :class:`~signer.report.Report` as PDF and
XML verification. A well-formed CMS whose signature is bad is a report with TOTAL_FAILED;
only input that is not a detached CMS signature at all raises a
:class:`~signer.errors.SignerError`.

Shared with :mod:`signer.xades`: :func:`check_signer_certificate` (path, revocation, key
usage, under a :class:`~signer.policy.ValidationPolicy`), :func:`check_timestamp` (an RFC
3161 token over given bytes) and :func:`key_strength_problem`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from asn1crypto import cms, core, ocsp, pem
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import (
    extract_certs_for_validation,
    extract_self_reported_ts,
    extract_tst_data_iter,
    get_signing_cert_attr,
    message_imprint_checker,
    validate_sig_integrity,
    validate_tst_signed_data,
)
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator.errors import (
    DisallowedAlgorithmError,
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.path import ValidationPath

from certs.aio import run_sync
from certs.keystore import SigningKey, from_asn1, to_asn1

from .anchors import named
from .checkcache import CertificateCheck
from .errors import DocumentTooLarge, InvalidDocument, SigningFailed, UnsupportedFormat
from .explain import with_explanation
from .levels import BASIC_LEVELS, Level, check_basic_level
from .policy import SELF_SIGNED_UNTRUSTED, ValidationPolicy, self_signed_untrusted
from .report import (
    CertificateInfo,
    Coverage,
    DocumentFormat,
    Indication,
    Report,
    RevocationEvidence,
    SignatureFormat,
    SignatureReport,
    SubIndication,
)

LEVELS = BASIC_LEVELS
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
DIGEST_ALGORITHM = "sha256"
ACCEPTED_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
WEAK_DIGESTS = frozenset({"md5", "sha1"})
ACCEPTED_MECHANISMS = frozenset(
    {
        "rsassa_pkcs1v15",
        "sha256_rsa",
        "sha384_rsa",
        "sha512_rsa",
        "rsassa_pss",
        "ecdsa",
        "sha256_ecdsa",
        "sha384_ecdsa",
        "sha512_ecdsa",
    }
)
WEAK_MECHANISMS = frozenset({"md5_rsa", "sha1_rsa", "sha1_ecdsa", "dsa", "sha1_dsa"})
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")


# --- Shared checks -------------------------------------------------------------------------

# What checking a damaged token raises, besides certvalidator's verdicts: asn1crypto parses
# lazily (ValueError, TypeError, KeyError wherever a bad field is first read), certvalidator
# looks hash algorithms up by name (AttributeError for an OID it does not know), cryptography
# refuses a damaged key (UnsupportedAlgorithm), asn1crypto recurses into nested DER.
MALFORMED_DER: tuple[type[Exception], ...] = (
    SignatureValidationError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    UnsupportedAlgorithm,
    RecursionError,
)


@functools.lru_cache(maxsize=1024)
def parse_certificate(der: bytes) -> x509.Certificate:
    """A certificate from DER, read in full now by both parsers validation hands it to.

    cryptography and asn1crypto both parse lazily and are not equally strict: a damaged
    certificate that one of them loads would otherwise fail later, deep inside path
    validation (a name that is not UTF-8, an extension that does not parse, a public key
    cryptography refuses, trailing bytes asn1crypto ignores). Raises :class:`ValueError`.

    The same few certificates arrive with every document an agency signs: the checked result
    is kept per DER (certificates are immutable; a failure is not kept).
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        certificate.extensions  # noqa: B018
        certificate.public_key()
        parsed = asn1_x509.Certificate.load(der, strict=True)
        parsed.native  # noqa: B018
        # The normalized names certvalidator matches issuers by (RFC 4518 string prep).
        parsed.subject.hashable  # noqa: B018
        parsed.issuer.hashable  # noqa: B018
    except (ValueError, TypeError, UnsupportedAlgorithm, RecursionError) as exc:
        raise ValueError(f"malformed certificate ({exc})") from None
    return certificate


def key_strength_problem(certificate: x509.Certificate) -> str | None:
    """Why the certificate's key is too weak for a signature today (None if it is fine)."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} required)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return f"EC key on {key.curve.name} (at least P-256 required)"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return f"unsupported key type {type(key).__name__}"
    return None


def _usage_problem(certificate: x509.Certificate) -> str | None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None  # RFC 5280: no KeyUsage extension means no restriction
    if usage.digital_signature or usage.content_commitment:
        return None
    return "the certificate's key usage allows neither digitalSignature nor nonRepudiation"


async def check_signer_certificate(
    certificate: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    policy: ValidationPolicy,
    *,
    claimed_time: dt.datetime | None = None,
    proof_of_existence: dt.datetime | None = None,
) -> CertificateCheck:
    """Validate ``certificate`` for signing: a path to a trust root, revocation, key usage.

    Revocation information is required (fetched online unless ``policy.offline``). No path
    to a trusted root gives NO_CERTIFICATE_CHAIN_FOUND, missing revocation information
    TRY_LATER. A revoked signer gives REVOKED when the signature claims a time after the
    revocation (or none), REVOKED_NO_POE when it claims an earlier time nothing proves, and
    passes when ``proof_of_existence`` (a verified signature timestamp) precedes the
    revocation, as PAdES validation does. ``proof_of_existence`` also decides whether an
    expired certificate means EXPIRED (signed after expiry) or OUT_OF_BOUNDS_NO_POE.
    """
    intermediates = tuple(intermediates)
    cache = policy.checks if policy.at is None else None
    if cache is None:
        return await _check_signer_certificate(
            certificate, intermediates, policy, claimed_time, proof_of_existence
        )
    key = cache.key(certificate, intermediates)
    kept = cache.get(key)
    if kept is not None:
        return kept
    check = await _check_signer_certificate(
        certificate, intermediates, policy, claimed_time, proof_of_existence
    )
    if check.detail is None:
        cache.keep(key, check)  # a clean pass only: no revocation, no proof of existence used
    return check


async def _check_signer_certificate(
    certificate: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    policy: ValidationPolicy,
    claimed_time: dt.datetime | None,
    proof_of_existence: dt.datetime | None,
) -> CertificateCheck:
    context = policy.validation_context()
    signer_asn1 = to_asn1(certificate)
    if self_signed_untrusted(signer_asn1, context):
        return CertificateCheck(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND, SELF_SIGNED_UNTRUSTED, [certificate]
        )
    validator = CertificateValidator(
        signer_asn1,
        intermediate_certs=[to_asn1(c) for c in intermediates],
        validation_context=context,
    )
    path: ValidationPath | None = None
    sub: SubIndication | None = None
    detail: str | None = None
    try:
        path = await validator.async_validate_path()
    except RevokedError as exc:
        sub, detail = _revoked(exc, claimed_time, proof_of_existence)
        path = exc.original_path
    except InsufficientRevinfoError as exc:
        sub, detail = SubIndication.TRY_LATER, exc.failure_msg
    except ExpiredError as exc:
        detail = exc.failure_msg
        if not exc.is_ee_cert:
            sub = SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE
        elif proof_of_existence and proof_of_existence > certificate.not_valid_after_utc:
            sub = SubIndication.EXPIRED
        else:
            sub = SubIndication.OUT_OF_BOUNDS_NO_POE
    except NotYetValidError as exc:
        sub = SubIndication.NOT_YET_VALID if exc.is_ee_cert else SubIndication.OUT_OF_BOUNDS_NO_POE
        detail = exc.failure_msg
    except DisallowedAlgorithmError as exc:
        sub, detail = SubIndication.CRYPTO_CONSTRAINTS_FAILURE, exc.failure_msg
    except PathBuildingError as exc:
        sub = SubIndication.NO_CERTIFICATE_CHAIN_FOUND
        detail = f"no path to a trusted root: {exc}"
    except PathValidationError as exc:
        sub, detail = SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, exc.failure_msg
    except (InvalidCertificateError, ValidationError) as exc:
        sub, detail = SubIndication.CHAIN_CONSTRAINTS_FAILURE, exc.failure_msg
    if sub is None and path is not None:
        problem = _usage_problem(certificate)
        if problem:
            sub, detail = SubIndication.CHAIN_CONSTRAINTS_FAILURE, problem
    chain = [from_asn1(c) for c in reversed(list(path))] if path is not None else [certificate]
    evidence = revocation_evidence(context.ocsps, context.crls, certificate)
    return CertificateCheck(sub, detail, chain, evidence)


def _revoked(
    exc: RevokedError, claimed: dt.datetime | None, proof: dt.datetime | None
) -> tuple[SubIndication | None, str]:
    revoked_at = exc.revocation_dt
    if not exc.is_ee_cert:
        return SubIndication.REVOKED_CA_NO_POE, exc.failure_msg
    detail = f"the signer's certificate was revoked on {revoked_at.isoformat()}"
    if proof is not None and proof < revoked_at:
        # A timestamp proves the signature existed before the revocation (ETSI 5.6.2.4).
        return None, f"{detail}; a timestamp proves the signature was made before"
    if claimed is None or revoked_at <= claimed:
        return SubIndication.REVOKED, detail
    return SubIndication.REVOKED_NO_POE, f"{detail}; nothing proves the claimed earlier time"


def revocation_evidence(
    ocsps: Iterable[ocsp.OCSPResponse],
    crls: Iterable[asn1_crl.CertificateList],
    certificate: x509.Certificate,
    source: str = "fetched",
) -> list[RevocationEvidence]:
    """What the revocation answers used in validation say about ``certificate``."""
    serial = format(certificate.serial_number, "X")
    found: list[RevocationEvidence] = []
    for response in ocsps:
        try:
            basic = response["response_bytes"]["response"].parsed
            data = basic["tbs_response_data"]
            for single in data["responses"]:
                if single["cert_id"]["serial_number"].native != certificate.serial_number:
                    continue
                found.append(
                    RevocationEvidence(
                        kind="OCSP",
                        source=source,
                        certificate_serial=serial,
                        status=str(single["cert_status"].name),
                        produced_at=data["produced_at"].native,
                    )
                )
        except (KeyError, ValueError, TypeError):
            continue
    issuer = certificate.issuer.public_bytes()
    for revocation_list in crls:
        try:
            if revocation_list["tbs_cert_list"]["issuer"].dump() != issuer:
                continue
            revoked = any(
                entry["user_certificate"].native == certificate.serial_number
                for entry in revocation_list["tbs_cert_list"]["revoked_certificates"]
            )
            found.append(
                RevocationEvidence(
                    kind="CRL",
                    source=source,
                    certificate_serial=serial,
                    status="revoked" if revoked else "not listed",
                    produced_at=revocation_list["tbs_cert_list"]["this_update"].native,
                    issuer=revocation_list["tbs_cert_list"]["issuer"].human_friendly,
                )
            )
        except (KeyError, ValueError, TypeError):
            continue
    return found


@dataclass(frozen=True)
class TimestampCheck:
    """A signature timestamp token, checked: usable as proof of existence, or why not."""

    time: dt.datetime | None
    usable: bool
    detail: str
    tsa: x509.Certificate | None = None


async def check_timestamp(
    token: bytes | cms.SignedData,
    imprint: Callable[[str], bytes],
    policy: ValidationPolicy,
) -> TimestampCheck:
    """Check an RFC 3161 token (DER ``ContentInfo`` or its ``SignedData``): its imprint
    (``imprint(hash_name)`` gives the expected digest), its signature and its TSA
    certificate (path and revocation under ``policy``).
    """
    try:
        if isinstance(token, cms.SignedData):
            signed_data = token
        else:
            info = cms.ContentInfo.load(token, strict=True)
            if info["content_type"].native != "signed_data":
                return TimestampCheck(None, False, "the timestamp is not a CMS SignedData")
            signed_data = info["content"]
        status = TimestampSignatureStatus(
            **await validate_tst_signed_data(signed_data, policy.validation_context(), imprint)
        )
    except MALFORMED_DER as exc:
        return TimestampCheck(None, False, f"the timestamp token is malformed: {exc}")
    tsa = from_asn1(status.signing_cert)
    when = status.timestamp
    if not status.intact:
        return TimestampCheck(when, False, "the timestamp does not cover this signature", tsa)
    if not status.valid:
        return TimestampCheck(when, False, "the timestamp's own signature is invalid", tsa)
    if not status.trusted:
        why = str(getattr(status.trust_problem_indic, "name", "untrusted"))
        return TimestampCheck(when, False, f"the timestamp authority is not trusted ({why})", tsa)
    name = CertificateInfo.of(tsa).common_name
    return TimestampCheck(when, True, f"signature timestamp {when.isoformat()} by {name}", tsa)


def finish(report: SignatureReport, sub: SubIndication | None) -> SignatureReport:
    """``report`` with the indication that ``sub`` implies, explained."""
    return with_explanation(report.finished(sub))


# --- Signing -------------------------------------------------------------------------------


async def async_sign_cms(
    content: bytes | IO[bytes],
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A detached CAdES signature (DER) over ``content`` with ``key``; see :func:`sign_cms`."""
    check_basic_level(level, timestamper is not None, "CAdES")
    attributes = PdfCMSSignedAttributes(
        signing_time=signing_time or dt.datetime.now(VN_TZ).replace(microsecond=0)
    )
    try:
        signed = await key.signer.async_sign_general_data(
            content,
            DIGEST_ALGORITHM,
            detached=True,
            use_cades=True,
            timestamper=timestamper if level == Level.B_T else None,
            signed_attr_settings=attributes,
        )
    except (TimestampRequestError, OSError) as exc:
        raise SigningFailed(f"the timestamp authority did not answer: {exc}") from None
    except SigningError as exc:
        raise SigningFailed(f"signing failed: {exc}") from None
    data: bytes = signed.dump()
    return data


def sign_cms(
    content: bytes | IO[bytes],
    key: SigningKey,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A detached CAdES signature (DER) over ``content`` (bytes or a binary file, streamed).

    ``level`` is ``"B-B"`` or ``"B-T"`` (B-T asks ``timestamper`` for a signature timestamp
    token). Raises :class:`SigningFailed` when the TSA does not answer.
    """
    return run_sync(
        async_sign_cms(
            content, key, level=level, timestamper=timestamper, signing_time=signing_time
        )
    )


# --- Verification --------------------------------------------------------------------------


def load_signed_data(signature: bytes) -> cms.SignedData:
    """The ``SignedData`` of a detached CMS signature (DER or PEM), or an input error."""
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise DocumentTooLarge(
            f"the signature file is {len(signature)} bytes, over {MAX_SIGNATURE_BYTES}"
        )
    if pem.detect(signature):
        try:
            _, _, signature = pem.unarmor(signature)
        except ValueError as exc:
            raise InvalidDocument(f"not a CMS signature: bad PEM ({exc})") from None
    try:
        info = cms.ContentInfo.load(signature, strict=True)
        kind = info["content_type"].native
        if kind != "signed_data":
            raise InvalidDocument(f"not a CMS signature: content type is {kind}")
        signed_data = info["content"]
        _parse_structure(signed_data)
        encapsulated = signed_data["encap_content_info"]["content"] is not core.VOID
        count = len(signed_data["signer_infos"])
    except InvalidDocument:
        raise
    except RecursionError:  # asn1crypto parses nested DER recursively
        raise InvalidDocument("not a CMS signature: DER nested too deeply") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # AttributeError: asn1crypto has no .native for some types it decodes, such as REAL.
        raise InvalidDocument(f"not a CMS signature (DER or PEM): {exc}") from None
    if encapsulated:
        raise UnsupportedFormat(
            "the CMS signature encapsulates its content; Kyso verifies detached CAdES"
        )
    if count != 1:
        raise UnsupportedFormat(f"the CMS signature has {count} signers; Kyso verifies one")
    assert isinstance(signed_data, cms.SignedData)
    return signed_data


def _parse_structure(signed_data: cms.SignedData) -> None:
    """Parse what validation reads, so that malformed DER is an input error here.

    Not ``.native`` on the whole: asn1crypto re-encodes everything it converts, which is slow
    on large signatures and must never touch the signed attributes' original bytes.

    What validation reads is parsed in full, though: asn1crypto parses lazily, so a damaged
    signed attribute, timestamp token or certificate would otherwise raise wherever it is
    first touched, deep inside validation (found by tests/test_fuzz_verify.py).
    """
    for signer_info in signed_data["signer_infos"]:
        signer_info["sid"].native  # noqa: B018
        signer_info["digest_algorithm"].native  # noqa: B018
        signer_info["signature_algorithm"].native  # noqa: B018
        if not isinstance(signer_info["signed_attrs"], core.Void):
            for attribute in signer_info["signed_attrs"]:
                attribute.native  # noqa: B018 - small: content type, digest, time, certificate
        if not isinstance(signer_info["unsigned_attrs"], core.Void):
            for attribute in signer_info["unsigned_attrs"]:
                if attribute["type"].native == "signature_time_stamp_token":
                    attribute.native  # noqa: B018
        signer_info["signature"].native  # noqa: B018
    for certificate in signed_data["certificates"]:
        if isinstance(certificate.chosen, asn1_x509.Certificate):
            parse_certificate(certificate.chosen.dump())


def _check_algorithms(signer_info: cms.SignerInfo) -> tuple[str, str | None]:
    """The digest algorithm; raise for unknown algorithms, report weak ones (a problem)."""
    digest = signer_info["digest_algorithm"]["algorithm"].native
    mechanism = signer_info["signature_algorithm"]["algorithm"].native
    problem = None
    if digest in WEAK_DIGESTS:
        problem = f"weak digest algorithm {digest}"
    elif digest not in ACCEPTED_DIGESTS:
        raise UnsupportedFormat(f"unsupported digest algorithm {digest}")
    if mechanism in WEAK_MECHANISMS:
        problem = problem or f"weak signature algorithm {mechanism}"
    elif mechanism not in ACCEPTED_MECHANISMS:
        raise UnsupportedFormat(f"unsupported signature algorithm {mechanism}")
    return digest, problem


def _digest(content: bytes | IO[bytes], algorithm: str) -> tuple[bytes, str]:
    """The digest of ``content`` with ``algorithm``, and its SHA-256 (for the report)."""
    chosen = hashlib.new(algorithm)
    sha256 = hashlib.sha256()
    if isinstance(content, bytes):
        chosen.update(content)
        sha256.update(content)
    else:
        while chunk := content.read(1024 * 1024):
            chosen.update(chunk)
            sha256.update(chunk)
    return chosen.digest(), sha256.hexdigest()


async def async_verify_cms(
    signature: bytes,
    content: bytes | IO[bytes],
    policy: ValidationPolicy,
    name: str = "file",
) -> Report:
    """Verify a detached CAdES signature over ``content``; see :func:`verify_cms`."""
    signed_data = load_signed_data(signature)
    signer_info = signed_data["signer_infos"][0]
    digest_algorithm, weak = _check_algorithms(signer_info)
    digest, content_sha256 = _digest(content, digest_algorithm)
    report = SignatureReport(
        format=SignatureFormat.CADES,
        identifier="signer-1",
        indication=Indication.TOTAL_PASSED,
        signed_objects=(f"{name} (detached, SHA-256 {content_sha256})",),
        coverage=Coverage.ENTIRE_FILE,  # the message digest is over every byte of the file
        claimed_signing_time=extract_self_reported_ts(signer_info),
    )
    report, sub = await _verify_signer(signed_data, signer_info, digest, weak, policy, report)
    return Report(
        document=name,
        document_sha256=content_sha256,
        format=DocumentFormat.CMS,
        validation_time=policy.moment,
        signatures=named((finish(report, sub),), policy.anchors),
    )


async def _verify_signer(
    signed_data: cms.SignedData,
    signer_info: cms.SignerInfo,
    digest: bytes,
    weak: str | None,
    policy: ValidationPolicy,
    report: SignatureReport,
) -> tuple[SignatureReport, SubIndication | None]:
    """``report`` with what the signer's checks found, and the sub-indication they imply."""
    try:
        signer = extract_certs_for_validation(signed_data)
    except SignatureValidationError as exc:
        return report.noted(str(exc.failure_message)), SubIndication.NO_SIGNING_CERTIFICATE_FOUND
    certificate = from_asn1(signer.signer_cert)
    report = dataclasses.replace(report, signer=CertificateInfo.of(certificate))
    try:
        intact, valid = validate_sig_integrity(signer_info, signer.signer_cert, "data", digest)
    except SignatureValidationError as exc:
        name = str(getattr(exc.ades_subindication, "name", "FORMAT_FAILURE"))
        sub = SubIndication.__members__.get(name, SubIndication.FORMAT_FAILURE)
        return report.noted(str(exc.failure_message)), sub
    if not intact:
        changed = "the file was changed after it was signed (message digest differs)"
        return report.noted(changed), SubIndication.HASH_FAILURE
    if not valid:
        wrong = "the signature value does not verify with the signer's key"
        return report.noted(wrong), SubIndication.SIG_CRYPTO_FAILURE
    strength = weak or key_strength_problem(certificate)
    if strength:
        return report.noted(strength), SubIndication.CRYPTO_CONSTRAINTS_FAILURE
    attributes = signer_info["signed_attrs"]
    if isinstance(attributes, core.Void) or get_signing_cert_attr(attributes) is None:
        report = report.noted("plain CMS, not CAdES: no signing-certificate-v2 attribute")
    else:
        report = dataclasses.replace(report, level=Level.B_B)
    proof = None
    for token in extract_tst_data_iter(signer_info, signed=False):
        stamp = await check_timestamp(token, message_imprint_checker(signer_info), policy)
        report = report.noted(stamp.detail if stamp.usable else f"{stamp.detail}: ignored")
        if stamp.usable and stamp.time is not None:
            proof = stamp.time
            level = Level.B_T if report.level else None
            report = dataclasses.replace(report, timestamp_time=proof, level=level)
            break
    intermediates = [
        from_asn1(c) for c in signer.other_certs if isinstance(c, asn1_x509.Certificate)
    ]
    check = await check_signer_certificate(
        certificate,
        [*intermediates, *policy.extra_certs],
        policy,
        claimed_time=report.claimed_signing_time,
        proof_of_existence=proof,
    )
    report = dataclasses.replace(
        report,
        chain=tuple(CertificateInfo.of(c) for c in check.chain),
        revocation=tuple(check.revocation),
    )
    if check.detail:
        # A problem goes first ("most important first"); a note after the others.
        report = report.noted(check.detail, first=check.sub_indication is not None)
    return report, check.sub_indication


def verify_cms(
    signature: bytes,
    content: bytes | IO[bytes],
    policy: ValidationPolicy,
    name: str = "file",
) -> Report:
    """Verify a detached CAdES (or plain CMS) signature over ``content``.

    Returns a :class:`Report` (format ``"CMS"``) with one ``"CAdES"`` signature report:
    TOTAL_FAILED/HASH_FAILURE when the file changed, SIG_CRYPTO_FAILURE for a bad signature
    value, and the certificate verdicts of :func:`check_signer_certificate`. Raises
    :class:`InvalidDocument` / :class:`UnsupportedFormat` / :class:`DocumentTooLarge` when
    ``signature`` is not a detached CMS signature Kyso can read.
    """
    return run_sync(async_verify_cms(signature, content, policy, name))


__all__ = [
    "TimestampCheck",
    "async_sign_cms",
    "async_verify_cms",
    "check_signer_certificate",
    "check_timestamp",
    "finish",
    "key_strength_problem",
    "load_signed_data",
    "parse_certificate",
    "revocation_evidence",
    "sign_cms",
    "verify_cms",
]
