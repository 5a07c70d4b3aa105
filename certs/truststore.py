"""Trust anchors: a folder (or file) of PEM/DER certificates a verifier trusts."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from .errors import PKIError

MAX_TRUST_FILE_BYTES = 1024 * 1024


class TrustStoreError(PKIError):
    """The trust folder is missing, empty or holds something that is not a certificate."""


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
