"""The PKI as a whole: create it, issue and revoke certificates, publish CRLs.

A :class:`Pki` holds only public material; operations that need a CA key take the passphrase
and open the key for that one operation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from directory.certificates import SOURCE_KYSO_CA, CertificateRegistry, Role

from .agencies import agency_code_of
from .ca import CertificateAuthority, PublicKey, RevokedEntry, self_signed_root, utcnow
from .errors import PKIExists, UnknownCertificate
from .keyfile import KeyBundle, load_pkcs12, new_private_key, save_pkcs12, write_private
from .layout import ISSUING_CA, ROOT_CA, PkiLayout, slug
from .names import SubjectSpec
from .profiles import Endpoints, Profile
from .store import CertificateRecord, CertificateStore

# The certificates Kyso's CA registers to the agency named in their subject, and as what.
REGISTERED_ROLES = {Profile.SEAL: Role.SEAL, Profile.PERSON: Role.OFFICER}

CRL_VALIDITY = {ROOT_CA: dt.timedelta(days=30), ISSUING_CA: dt.timedelta(days=1)}

REVOCATION_REASONS = {
    reason.name.lower(): reason
    for reason in x509.ReasonFlags
    if reason not in (x509.ReasonFlags.remove_from_crl,)
}


def parse_reason(text: str) -> x509.ReasonFlags:
    """``keyCompromise``, ``key-compromise`` and ``key_compromise`` all name the same reason."""
    key = text.replace("-", "").replace("_", "").lower()
    for name, reason in REVOCATION_REASONS.items():
        if name.replace("_", "") == key:
            return reason
    choices = ", ".join(sorted(r.value for r in REVOCATION_REASONS.values()))
    raise ValueError(f"unknown revocation reason {text!r} (one of: {choices})")


@dataclass(frozen=True)
class Issued:
    """A certificate just issued, and where its key lives."""

    record: CertificateRecord
    certificate: x509.Certificate
    key_ref: str
    certificate_path: Path


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class Pki:
    """A PKI directory plus the CA's records in the database."""

    def __init__(
        self,
        layout: PkiLayout,
        store: CertificateStore,
        registry: CertificateRegistry | None = None,
    ) -> None:
        """``registry``: where the seals and officers' certificates this PKI issues are
        registered to their agency (none: they are only recorded in ``store``)."""
        manifest = layout.read_manifest()
        self.layout = layout
        self.store = store
        self.registry = registry
        self.endpoints = Endpoints(manifest["base_url"])
        self.root_certificate = self._read_certificate(layout.ca_certificate(ROOT_CA))
        self.issuing_certificate = self._read_certificate(layout.ca_certificate(ISSUING_CA))

    @staticmethod
    def _read_certificate(path: Path) -> x509.Certificate:
        return x509.load_pem_x509_certificate(path.read_bytes())

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA then root: what an end-entity bundle carries."""
        return (self.issuing_certificate, self.root_certificate)

    def ca_certificate(self, name: str) -> x509.Certificate:
        return {ROOT_CA: self.root_certificate, ISSUING_CA: self.issuing_certificate}[name]

    def authority(self, name: str, passphrase: bytes) -> CertificateAuthority:
        """Open a CA's key (``root`` or ``issuing``)."""
        bundle = load_pkcs12(self.layout.private_key(name), passphrase)
        return CertificateAuthority(name, bundle.certificate, bundle.private_key, self.endpoints)

    def service_bundle(self, name: str, passphrase: bytes) -> KeyBundle:
        """Open a service key: ``tsa``, ``ocsp`` or ``relay``."""
        return load_pkcs12(self.layout.private_key(name), passphrase)

    @classmethod
    def create(
        cls,
        directory: Path,
        base_url: str,
        passphrase: bytes,
        store: CertificateStore,
        organization: SubjectSpec,
        registry: CertificateRegistry | None = None,
    ) -> Pki:
        """Create root and issuing CAs and the TSA, OCSP and relay certificates.

        ``organization`` names the operator (province, country) used in every CA subject.
        """
        layout = PkiLayout(directory)
        if layout.exists():
            raise PKIExists(f"{directory} already holds a PKI; choose an empty directory")
        endpoints = Endpoints(base_url)
        root = self_signed_root(
            ROOT_CA,
            _variant(organization, "Kyso Root CA").to_name(),
            new_private_key("rsa3072"),
            endpoints,
        )
        issuing_key = new_private_key("rsa3072")
        issuing_cert = root.issue(
            Profile.ISSUING,
            _variant(organization, "Kyso Issuing CA").to_name(),
            issuing_key.public_key(),
        )
        for name, bundle in (
            (ROOT_CA, KeyBundle(root.private_key, root.certificate)),
            (ISSUING_CA, KeyBundle(issuing_key, issuing_cert, (root.certificate,))),
        ):
            save_pkcs12(layout.private_key(name), bundle, passphrase, f"Kyso {name} CA")
            write_private(layout.ca_certificate(name), pem(bundle.certificate))
        layout.chain.write_bytes(pem(issuing_cert) + pem(root.certificate))
        store.add(root.certificate, ROOT_CA, Profile.ROOT.value)
        store.add(issuing_cert, ROOT_CA, Profile.ISSUING.value)
        layout.write_manifest({"base_url": base_url, "created": utcnow().isoformat()})
        pki = cls(layout, store, registry)
        services = (
            ("tsa", Profile.TSA, "Kyso Time-Stamping Authority"),
            ("ocsp", Profile.OCSP, "Kyso OCSP Responder"),
            ("relay", Profile.SERVER, "Kyso Exchange Relay"),
        )
        issuing = pki.authority(ISSUING_CA, passphrase)
        for name, profile, cn in services:
            key = new_private_key()
            cert = issuing.issue(
                profile,
                _variant(organization, cn).to_name(),
                key.public_key(),
                dns_names=("localhost",),
            )
            save_pkcs12(layout.private_key(name), KeyBundle(key, cert, pki.chain), passphrase, cn)
            layout.certificate(name).parent.mkdir(parents=True, exist_ok=True)
            layout.certificate(name).write_bytes(pem(cert))
            store.add(cert, ISSUING_CA, profile.value, key_ref=f"p12:{layout.private_key(name)}")
        for ca_name in (ROOT_CA, ISSUING_CA):
            pki.publish_crl(pki.authority(ca_name, passphrase))
        return pki

    def issue(
        self,
        profile: Profile,
        subject: SubjectSpec,
        passphrase: bytes,
        *,
        name: str | None = None,
        key_type: str = "rsa2048",
        public_key: PublicKey | None = None,
        key_ref: str | None = None,
        issuing: CertificateAuthority | None = None,
    ) -> Issued:
        """Issue a seal or personal certificate from the issuing CA.

        Without ``public_key`` a new key is generated and stored as ``keys/NAME.p12``, encrypted
        with ``passphrase``; with it (a key generated in an HSM), ``key_ref`` names where it lives.
        ``issuing``: the issuing CA already opened (:meth:`authority`), for a batch of issues
        that pays for opening its key (PBKDF2) once.
        """
        name = name or slug(subject.common_name)
        role = REGISTERED_ROLES.get(profile)
        if self.registry is not None and role is not None and subject.agency_code:
            self.registry.check_agency(subject.agency_code)  # before anything is issued
        authority = issuing or self.authority(ISSUING_CA, passphrase)
        private_key = None
        if public_key is None:
            private_key = new_private_key(key_type)
            public_key = private_key.public_key()
        certificate = authority.issue(profile, subject.to_name(), public_key)
        if private_key is not None:
            key_path = self.layout.key(name)
            bundle = KeyBundle(private_key, certificate, self.chain)
            save_pkcs12(key_path, bundle, passphrase, subject.common_name)
            key_ref = f"p12:{key_path}"
        cert_path = self.layout.certificate(name)
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(pem(certificate))
        record = self.store.add(certificate, ISSUING_CA, profile.value, key_ref=key_ref)
        if self.registry is not None and role is not None and subject.agency_code:
            # As the UID binding did: what Kyso's CA issues for an agency is the agency's.
            self.registry.register(subject.agency_code, certificate, role, source=SOURCE_KYSO_CA)
        return Issued(record, certificate, key_ref or "", cert_path)

    def agency_code_of(self, certificate: x509.Certificate) -> str | None:
        """The agency code in ``certificate``'s UID if this PKI's issuing CA issued it
        (:func:`certs.agencies.agency_code_of`)."""
        return agency_code_of(certificate, self.issuing_certificate)

    def record(self, serial: int) -> CertificateRecord:
        """The certificate this PKI's issuing CA, or else its root, issued with ``serial``.

        Only this PKI's own CAs are asked: another CA's certificate with the same serial (a
        PKI made again, a foreign CA) is not this PKI's to revoke.
        """
        for ca in (self.issuing_certificate, self.root_certificate):
            record = self.store.find(serial, ca.subject)
            if record is not None:
                return record
        raise UnknownCertificate(f"this PKI issued no certificate with serial {serial:X}")

    def revoke(self, serial: int, reason: x509.ReasonFlags, passphrase: bytes) -> CertificateRecord:
        """Revoke a certificate and publish its CA's new CRL at once."""
        record = self.record(serial)
        authority = self.authority(record.ca, passphrase)  # fails before anything changes
        revoked = self.store.revoke(serial, reason, issuer=authority.certificate.subject)
        self.publish_crl(authority)
        return revoked

    def revoked(self, ca_name: str) -> list[CertificateRecord]:
        """Every certificate the CA ``ca_name`` of this PKI has revoked (what its CRL lists)."""
        return self.store.revoked(ca_name, self.ca_certificate(ca_name).subject)

    def publish_crl(self, authority: CertificateAuthority) -> x509.CertificateRevocationList:
        """Sign and write the CRL of ``authority`` from the current records."""
        now = utcnow()
        entries = [
            RevokedEntry(
                r.serial,
                r.revoked_at or now,
                x509.ReasonFlags(r.revocation_reason or "unspecified"),
            )
            for r in self.revoked(authority.name)
        ]
        number = self.store.next_value(f"crl:{authority.name}")
        crl = authority.sign_crl(
            entries, number, now - dt.timedelta(minutes=5), now + CRL_VALIDITY[authority.name]
        )
        path = self.layout.crl(authority.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, crl.public_bytes(serialization.Encoding.DER))
        path.chmod(0o644)
        return crl


def _variant(organization: SubjectSpec, common_name: str) -> SubjectSpec:
    return SubjectSpec(
        common_name=common_name,
        organization=organization.organization,
        province=organization.province,
        country=organization.country,
    )
