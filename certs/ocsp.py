"""An RFC 6960 OCSP responder for the certificates of one CA.

The responder signs with a delegated certificate (EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
and answers ``good``, ``revoked`` or ``unknown`` from the CA's records. A request that cannot be
parsed gets the ``malformedRequest`` status, never an exception.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import keys
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from .ca import utcnow
from .keyfile import PrivateKey
from .store import CertificateStore

# RFC 6960 requests are small; anything larger is not an OCSP request.
MAX_REQUEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class OcspResponder:
    """Answers OCSP requests about certificates issued by ``ca_certificate``."""

    ca_name: str
    ca_certificate: x509.Certificate
    responder_certificate: x509.Certificate
    responder_key: PrivateKey
    store: CertificateStore
    validity: dt.timedelta = dt.timedelta(hours=1)

    def respond(self, request_der: bytes) -> bytes:
        """Return a DER OCSPResponse for a DER OCSPRequest."""
        if len(request_der) > MAX_REQUEST_BYTES:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        now = utcnow()
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            nonce = _nonce(request)
            algorithm = request.hash_algorithm  # UnsupportedAlgorithm for an unknown OID
            if request.serial_number < 0:
                # No certificate has one, and cryptography cannot encode it in the answer.
                raise ValueError("negative serial number")
            sizes = {len(request.issuer_name_hash), len(request.issuer_key_hash)}
            if sizes != {algorithm.digest_size}:
                raise ValueError("the CertID's hashes do not have the algorithm's length")
            if not self._issued_here(request, algorithm):
                # RFC 6960 2.3: not authoritative for another CA's certificates. A signed
                # "unknown" would not verify: a delegated responder speaks for its own CA only.
                return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
            status = self._status(request, algorithm, now)
        except (ValueError, UnsupportedAlgorithm, x509.UnsupportedGeneralNameType):
            # Found by tests/test_fuzz_http.py: each of these was a 500 before.
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        builder = status.responder_id(ocsp.OCSPResponderEncoding.HASH, self.responder_certificate)
        builder = builder.certificates([self.responder_certificate, self.ca_certificate])
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(self.responder_key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def _issued_here(self, request: ocsp.OCSPRequest, algorithm: hashes.HashAlgorithm) -> bool:
        name_hash, key_hash = issuer_hashes(self.ca_certificate, algorithm)
        return request.issuer_name_hash == name_hash and request.issuer_key_hash == key_hash

    def _status(
        self, request: ocsp.OCSPRequest, algorithm: hashes.HashAlgorithm, now: dt.datetime
    ) -> ocsp.OCSPResponseBuilder:
        status = ocsp.OCSPCertStatus.UNKNOWN
        revoked_at: dt.datetime | None = None
        reason: x509.ReasonFlags | None = None
        record = self.store.find(request.serial_number, self.ca_certificate.subject)
        if record is not None and record.ca == self.ca_name:
            status = ocsp.OCSPCertStatus.GOOD
            if record.revoked_at is not None:
                status = ocsp.OCSPCertStatus.REVOKED
                revoked_at = record.revoked_at
                reason = x509.ReasonFlags(record.revocation_reason or "unspecified")
        return ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + self.validity,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """CertID's issuerNameHash and issuerKeyHash for ``issuer`` (RFC 6960 4.1.1)."""
    name_digest = hashes.Hash(algorithm)
    name_digest.update(issuer.subject.public_bytes())
    key_digest = hashes.Hash(algorithm)
    key_digest.update(_subject_public_key_bits(issuer))
    return name_digest.finalize(), key_digest.finalize()


def _subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The BIT STRING's contents without its leading unused-bits octet.
    return bytes(keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
