"""Is this OCSP response or CRL genuine, about this certificate, and fresh? (RFC 6960, 5280)

Pure checks over bytes that came from the network: nothing here fetches. Each function returns
what it verified, or raises :class:`InvalidEvidence` saying what is wrong. Signatures are
checked with ``cryptography``; the CertID of an OCSP answer is compared with one ``cryptography``
builds for the certificate (no ASN.1 is written by hand).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from .errors import PKIError


class InvalidEvidence(PKIError):
    """An OCSP response or CRL that cannot be relied on: unparsable, unsuccessful, badly
    signed, signed by the wrong key, about another certificate, or stale."""


@dataclass(frozen=True)
class Freshness:
    """How much clock difference is forgiven, and how old an answer without nextUpdate may be."""

    skew: dt.timedelta = dt.timedelta(minutes=5)
    max_age_without_next_update: dt.timedelta = dt.timedelta(hours=1)


def check_fresh(
    this_update: dt.datetime, next_update: dt.datetime | None, now: dt.datetime, bounds: Freshness
) -> None:
    """:class:`InvalidEvidence` unless ``now`` lies between thisUpdate and nextUpdate (with the
    skew); an answer without nextUpdate must be at most ``max_age_without_next_update`` old."""
    if this_update > now + bounds.skew:
        raise InvalidEvidence(f"thisUpdate {this_update:%Y-%m-%d %H:%M:%S} is in the future")
    if next_update is not None and next_update < now - bounds.skew:
        raise InvalidEvidence(f"it expired at nextUpdate {next_update:%Y-%m-%d %H:%M:%S}")
    if next_update is None and now - this_update > bounds.max_age_without_next_update:
        raise InvalidEvidence("it has no nextUpdate and is too old")


def verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> None:
    """:class:`InvalidEvidence` unless ``key`` verifies ``signature`` over ``data``
    (RSA PKCS#1 v1.5, ECDSA, Ed25519, Ed448)."""
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise InvalidEvidence(f"unsupported signature key {type(key).__name__}")
    except InvalidSignature:
        raise InvalidEvidence("the signature does not verify") from None


# --- OCSP ------------------------------------------------------------------------------------


def ocsp_request(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
) -> ocsp.OCSPRequest:
    """The OCSP request for ``certificate`` (CertID hashed with SHA-1 unless told, no nonce:
    answers stay cacheable, and freshness is checked from their times instead)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        # SHA-1 names the certificate here, it secures nothing; RFC 5019 responders expect it.
        certificate,
        issuer,
        algorithm or hashes.SHA1(),  # noqa: S303
    )
    return builder.build()


def _is_responder(response: ocsp.OCSPResponse, candidate: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == candidate.subject
    key_id = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest
    return response.responder_key_hash == key_id  # RFC 6960: SHA-1 of the key's BIT STRING


def _delegated(candidate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> bool:
    """Whether ``candidate`` is a responder certificate the CA ``issuer`` delegated to."""
    try:
        candidate.verify_directly_issued_by(issuer)
        usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    valid = candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc
    return valid and ExtendedKeyUsageOID.OCSP_SIGNING in usage


def ocsp_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime
) -> x509.Certificate:
    """Who signed ``response``: the CA ``issuer`` itself, or a responder it delegated to
    (id-kp-OCSPSigning, issued by it, valid now) among the certificates in the response."""
    if _is_responder(response, issuer):
        return issuer
    for candidate in response.certificates:
        if _is_responder(response, candidate) and _delegated(candidate, issuer, now):
            return candidate
    raise InvalidEvidence("the OCSP response is signed neither by the CA nor by its responder")


def verify_ocsp(
    der: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
    bounds: Freshness = Freshness(),
) -> ocsp.OCSPSingleResponse:
    """The single response about ``certificate`` in the DER OCSPResponse ``der``, once its
    signature, its signer's authority and its freshness are verified."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise InvalidEvidence(f"not an OCSP response: {exc}") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise InvalidEvidence(f"the responder answered {response.response_status.name}")
    try:
        signer = ocsp_signer(response, issuer, now)
        verify_signature(
            signer.public_key(),
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        )
        single = _single_for(response, certificate, issuer)
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise InvalidEvidence(f"unusable OCSP response: {exc}") from None
    check_fresh(single.this_update_utc, single.next_update_utc, now, bounds)
    return single


def _single_for(
    response: ocsp.OCSPResponse, certificate: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    for single in response.responses:
        if single.serial_number != certificate.serial_number:
            continue
        wanted = ocsp_request(certificate, issuer, single.hash_algorithm)
        if (single.issuer_key_hash, single.issuer_name_hash) == (
            wanted.issuer_key_hash,
            wanted.issuer_name_hash,
        ):
            return single
    raise InvalidEvidence("the OCSP response is not about this certificate")


# --- CRLs ------------------------------------------------------------------------------------


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from DER (or PEM, which some CAs publish); :class:`InvalidEvidence` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise InvalidEvidence(f"not a CRL: {exc}") from None


def verify_crl(
    data: bytes, issuer: x509.Certificate, now: dt.datetime, bounds: Freshness = Freshness()
) -> x509.CertificateRevocationList:
    """The CRL in ``data`` once it is shown to be a complete CRL of ``issuer`` (its name, its
    key's signature; indirect and delta CRLs are not accepted) that is fresh at ``now``."""
    crl = load_crl(data)
    if crl.issuer != issuer.subject:
        raise InvalidEvidence("the CRL was issued by another CA (indirect CRLs are not supported)")
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        raise InvalidEvidence("a delta CRL is not a complete CRL")
    except x509.ExtensionNotFound:
        pass
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, UnsupportedAlgorithm, ValueError):
        valid = False
    if not valid:
        raise InvalidEvidence("the CRL's signature does not verify with the CA's key")
    check_fresh(crl.last_update_utc, crl.next_update_utc, now, bounds)
    return crl


def crl_reason(entry: x509.RevokedCertificate) -> str | None:
    """The reason a CRL entry gives (``keyCompromise`` …), or None."""
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return reason.name
