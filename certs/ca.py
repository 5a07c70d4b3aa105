"""A certification authority: issues certificates and signs revocation lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .clock import utcnow
from .keyfile import PrivateKey
from .profiles import Endpoints, Profile, extensions

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# Certificates start a little in the past so that clocks a few minutes behind still accept them.
_BACKDATE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class RevokedEntry:
    """One line of a CRL."""

    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags | None


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate with its private key, able to issue and to sign CRLs."""

    name: str
    certificate: x509.Certificate
    private_key: PrivateKey
    endpoints: Endpoints

    def issue(
        self,
        profile: Profile,
        subject: x509.Name,
        public_key: PublicKey,
        *,
        dns_names: tuple[str, ...] = (),
        not_before: dt.datetime | None = None,
        validity: dt.timedelta | None = None,
    ) -> x509.Certificate:
        """Issue a certificate of ``profile`` for ``public_key``.

        The validity never extends beyond the CA's own (RFC 5280 path validation would reject it).
        """
        start = not_before or utcnow() - _BACKDATE
        end = start + (validity or dt.timedelta(days=profile.validity_days))
        end = min(end, self.certificate.not_valid_after_utc)
        return _build(
            subject=subject,
            issuer=self.certificate.subject,
            public_key=public_key,
            signing_key=self.private_key,
            not_before=start,
            not_after=end,
            extra=extensions(profile, self.endpoints, self.name, dns_names=dns_names),
            authority_key=self.certificate.public_key(),  # type: ignore[arg-type]
        )

    def sign_crl(
        self,
        revoked: Iterable[RevokedEntry],
        number: int,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> x509.CertificateRevocationList:
        """Sign a CRL listing ``revoked``, numbered ``number`` (RFC 5280 5.2.3)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.certificate.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
        )
        for entry in revoked:
            item = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
            )
            if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
                item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
            builder = builder.add_revoked_certificate(item.build())
        return builder.sign(self.private_key, hashes.SHA256())


def self_signed_root(
    name: str, subject: x509.Name, private_key: PrivateKey, endpoints: Endpoints
) -> CertificateAuthority:
    """Create a root CA whose certificate is signed by its own key."""
    start = utcnow() - _BACKDATE
    certificate = _build(
        subject=subject,
        issuer=subject,
        public_key=private_key.public_key(),
        signing_key=private_key,
        not_before=start,
        not_after=start + dt.timedelta(days=Profile.ROOT.validity_days),
        extra=extensions(Profile.ROOT, endpoints, name),
        authority_key=private_key.public_key(),
    )
    return CertificateAuthority(name, certificate, private_key, endpoints)


def _build(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    signing_key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extra: list[tuple[x509.ExtensionType, bool]],
    authority_key: PublicKey,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key), critical=False
        )
    )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())
