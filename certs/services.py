"""The PKI's online services, loaded once per process: CRL publication, OCSP and the TSA."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .ca import CertificateAuthority, utcnow
from .errors import PKIError
from .keystore import signer_from_bundle
from .layout import ISSUING_CA, ROOT_CA
from .ocsp import OcspResponder
from .pki import CRL_VALIDITY, Pki
from .store import SerialBlocks
from .tsa import TimeStampAuthority

TSA_SERIAL_COUNTER = "tsa:serial"


class UnknownCA(PKIError):
    """No CA of that name."""


@dataclass
class PkiServices:
    """OCSP responder, TSA and CRL publisher with their keys opened."""

    pki: Pki
    authorities: dict[str, CertificateAuthority]
    ocsp: OcspResponder
    tsa: TimeStampAuthority
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, pki: Pki, passphrase: bytes) -> PkiServices:
        """Open the service keys; raises :class:`WrongPassphrase` before serving anything."""
        responder = pki.service_bundle("ocsp", passphrase)
        tsa = pki.service_bundle("tsa", passphrase)
        return cls(
            pki=pki,
            authorities={name: pki.authority(name, passphrase) for name in (ROOT_CA, ISSUING_CA)},
            ocsp=OcspResponder(
                ca_name=ISSUING_CA,
                ca_certificate=pki.issuing_certificate,
                responder_certificate=responder.certificate,
                responder_key=responder.private_key,
                store=pki.store,
            ),
            tsa=TimeStampAuthority(
                signer=signer_from_bundle(tsa),
                next_serial=SerialBlocks(pki.store, TSA_SERIAL_COUNTER),
            ),
        )

    def crl(self, ca_name: str) -> bytes:
        """The CA's current CRL (DER), re-signed if stale or behind the revocation records."""
        if ca_name not in self.authorities:
            raise UnknownCA(f"no CA named {ca_name!r}")
        path = self.pki.layout.crl(ca_name)
        with self._lock:
            if self._stale(ca_name):
                self.pki.publish_crl(self.authorities[ca_name])
            return path.read_bytes()

    def _stale(self, ca_name: str) -> bool:
        path = self.pki.layout.crl(ca_name)
        if not path.is_file():
            return True
        crl = x509.load_der_x509_crl(path.read_bytes())
        next_update = crl.next_update_utc
        margin = CRL_VALIDITY[ca_name] / 2
        if next_update is None or next_update - utcnow() < margin:
            return True
        listed = {entry.serial_number for entry in crl}
        return listed != {r.serial for r in self.pki.revoked(ca_name)}

    def answer(self, url: str, body: bytes | None) -> bytes | None:
        """The response to a request for one of this PKI's own URLs, without HTTP.

        ``body`` is the DER of a POST (OCSP) or None for a GET (CRL). Returns None when ``url``
        is not an OCSP or CRL URL this PKI publishes (see :mod:`signer.localfetch`).
        """
        endpoints = self.pki.endpoints
        if url == endpoints.ocsp and body is not None:
            return self.ocsp.respond(body)
        for ca_name in self.authorities:
            if url == endpoints.crl(ca_name) and body is None:
                return self.crl(ca_name)
        return None

    def ca_certificate_der(self, ca_name: str) -> bytes:
        if ca_name not in self.authorities:
            raise UnknownCA(f"no CA named {ca_name!r}")
        certificate = self.pki.ca_certificate(ca_name)
        return certificate.public_bytes(serialization.Encoding.DER)


__all__ = ["PkiServices", "UnknownCA"]
