"""Trust anchors: the certificates a verifier trusts, from a folder (``--trust``) or the store.

A :class:`TrustSet` is what a verifier is handed: named entries, each a **root** (a trust
anchor: a chain that reaches it is trusted) or an **intermediate** (a CA certificate offered
for path building only: it makes nothing trusted by itself, its chain must still reach a
root). Kyso's own CA is an entry like any other (:func:`certs.trust_anchors.local_pki_anchors`).
Where the set comes from — a folder of PEM/DER files, or the administrator's list in the
database (:mod:`certs.trust_anchors`) — does not matter to the verifier.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from directory.fingerprints import certificate_fingerprint as fingerprint

from .clock import utcnow
from .errors import PKIError

MAX_TRUST_FILE_BYTES = 1024 * 1024


class TrustStoreError(PKIError):
    """The trust folder is missing, empty or holds something that is not a certificate."""


class AnchorRole(enum.Enum):
    """What an entry of a trust set is for (see the module's docstring)."""

    ROOT = "root"
    INTERMEDIATE = "intermediate"


def is_self_issued(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` names itself as its issuer and its own key verifies it."""
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def default_role(certificate: x509.Certificate) -> AnchorRole:
    """A self-signed certificate is a root; any other CA certificate an intermediate."""
    return AnchorRole.ROOT if is_self_issued(certificate) else AnchorRole.INTERMEDIATE


@dataclass(frozen=True)
class TrustAnchor:
    """One entry: a name an administrator recognises, the certificate, its role, and until
    when it is trusted (``None``: as long as the certificate itself is valid)."""

    name: str
    certificate: x509.Certificate
    role: AnchorRole
    trusted_until: dt.datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        """The end of trust: the certificate's expiry, or ``trusted_until`` if earlier."""
        end = self.certificate.not_valid_after_utc
        return end if self.trusted_until is None else min(end, self.trusted_until)

    def valid_at(self, moment: dt.datetime) -> bool:
        return self.not_before <= moment <= self.not_after


@dataclass(frozen=True)
class TrustSet:
    """The trust roots and intermediates a verifier uses (immutable; share it freely)."""

    anchors: tuple[TrustAnchor, ...] = ()

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return tuple(a.certificate for a in self.anchors if a.role is AnchorRole.ROOT)

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return tuple(a.certificate for a in self.anchors if a.role is AnchorRole.INTERMEDIATE)

    def valid_at(self, moment: dt.datetime | None = None) -> TrustSet:
        """The entries trusted at ``moment`` (now by default): expired ones drop out."""
        moment = moment or utcnow()
        return TrustSet(tuple(a for a in self.anchors if a.valid_at(moment)))

    def named(self, certificate: x509.Certificate) -> TrustAnchor | None:
        """The entry holding exactly ``certificate``, or None (how a verdict names its CA)."""
        wanted = fingerprint(certificate)
        return next((a for a in self.anchors if a.fingerprint == wanted), None)

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        """An entry whose subject issued ``certificate`` and whose key verifies it, or None."""
        for anchor in self.anchors:
            if anchor.certificate.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(anchor.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return anchor.certificate
        return None

    def anchor_path(
        self, certificate: x509.Certificate, max_depth: int = 8
    ) -> tuple[TrustAnchor, ...] | None:
        """The entries from ``certificate``'s issuer up to a root, each one's key verifying
        the one below; None if no such path exists. How a report names the CA; it is no
        validation (validity, key usage, name constraints: pyHanko's path validation does)."""
        path: list[TrustAnchor] = []
        current = certificate
        while len(path) < max_depth:
            issuer = self.issuer_of(current)
            anchor = self.named(issuer) if issuer is not None else None
            if anchor is None or anchor in path:
                return None
            path.append(anchor)
            if anchor.role is AnchorRole.ROOT:
                return tuple(path)
            current = anchor.certificate
        return None

    @classmethod
    def of(cls, certificates: Iterable[x509.Certificate], source: str = "") -> TrustSet:
        """Certificates with their default roles, named ``source#N`` (a ``--trust`` folder)."""
        return cls(
            tuple(
                TrustAnchor(f"{source}#{i}" if source else f"#{i}", cert, default_role(cert))
                for i, cert in enumerate(certificates, 1)
            )
        )

    @classmethod
    def from_path(cls, path: Path) -> TrustSet:
        """The certificates of a file or folder (:func:`load_certificates`) as a trust set."""
        return cls.of(load_certificates(path), path.name)


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in ``path``: a PEM bundle, a DER file, or a folder of them."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise TrustStoreError(f"trust store {path} does not exist")
    certificates: list[x509.Certificate] = []
    for file in files:
        certificates.extend(_read(file))
    if not certificates:
        raise TrustStoreError(f"no certificates found in {path}")
    return certificates


def load_one_certificate(path: Path) -> x509.Certificate:
    """The one certificate in ``path`` (PEM or DER); :class:`TrustStoreError` otherwise."""
    if not path.is_file():
        raise TrustStoreError(f"{path} is not a file")
    found = load_certificates(path)
    if len(found) != 1:
        raise TrustStoreError(f"{path} holds {len(found)} certificates, give one per entry")
    return found[0]


def parse_one_certificate(data: bytes) -> x509.Certificate:
    """The one certificate in ``data`` (PEM or DER, as uploaded); :class:`TrustStoreError`
    for anything else: too large, not a certificate, or a PEM bundle of several."""
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise TrustStoreError("the file is too large to be a certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            found = x509.load_pem_x509_certificates(data)
        else:
            found = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise TrustStoreError(f"not a valid certificate: {exc}") from None
    if len(found) != 1:
        raise TrustStoreError(f"the file holds {len(found)} certificates, give one")
    return found[0]


def _read(file: Path) -> list[x509.Certificate]:
    if file.stat().st_size > MAX_TRUST_FILE_BYTES:
        raise TrustStoreError(f"{file} is too large to be a certificate file")
    data = file.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        if file.suffix.lower() in {".der", ".cer", ".crt"}:
            return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise TrustStoreError(f"{file} is not a valid certificate: {exc}") from None
    return []  # other files in the folder (READMEs, keys) are ignored
