"""Encrypted key files: PKCS#12 bundles (key, certificate, chain) and PKCS#8 keys.

Private keys never touch the disk unencrypted: bundles use PBES2 (PBKDF2-SHA256, AES-256-CBC)
and are written with mode 0600, atomically.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import KeyFileError, WrongPassphrase

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_KDF_ROUNDS = 100_000


@dataclass(frozen=True)
class KeyBundle:
    """A private key with its certificate and the chain up to (not always including) the root."""

    private_key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def new_private_key(key_type: str = "rsa2048") -> PrivateKey:
    """Generate a key: ``rsa2048``, ``rsa3072``, ``rsa4096`` or ``p256``/``p384``."""
    if key_type.startswith("rsa"):
        bits = int(key_type[3:] or 2048)
        if bits < 2048:
            raise KeyFileError("RSA keys must have at least 2048 bits")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    curves: dict[str, ec.EllipticCurve] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}
    if key_type not in curves:
        raise KeyFileError(f"unknown key type {key_type!r} (use rsa2048, rsa3072, p256 or p384)")
    return ec.generate_private_key(curves[key_type])


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _encryption(passphrase: bytes) -> serialization.KeySerializationEncryption:
    if not passphrase:
        raise WrongPassphrase("an empty passphrase cannot protect a private key")
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )


def save_pkcs12(path: Path, bundle: KeyBundle, passphrase: bytes, friendly_name: str) -> None:
    """Store ``bundle`` as an encrypted PKCS#12 file."""
    data = pkcs12.serialize_key_and_certificates(
        name=friendly_name.encode(),
        key=bundle.private_key,
        cert=bundle.certificate,
        cas=list(bundle.chain) or None,
        encryption_algorithm=_encryption(passphrase),
    )
    write_private(path, data)


def load_pkcs12(path: Path, passphrase: bytes) -> KeyBundle:
    """Read an encrypted PKCS#12 file.

    Raises :class:`KeyFileError` if the file is missing or malformed and :class:`WrongPassphrase`
    if it cannot be decrypted.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError as exc:
        # cryptography reports a bad MAC (wrong passphrase) and a malformed file alike.
        raise WrongPassphrase(
            f"cannot open {path}: wrong passphrase or not a PKCS#12 file"
        ) from exc
    if key is None or cert is None:
        raise KeyFileError(f"{path} holds no private key and certificate")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: only RSA and ECDSA keys are supported")
    return KeyBundle(key, cert, tuple(extra))


def save_pkcs8(path: Path, key: PrivateKey, passphrase: bytes) -> None:
    """Store a lone private key as an encrypted PKCS#8 PEM file."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    write_private(path, data)


def load_pkcs8(path: Path, passphrase: bytes) -> PrivateKey:
    """Read an encrypted PKCS#8 PEM or DER key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    loader = (
        serialization.load_pem_private_key
        if data.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    try:
        key = loader(data, passphrase)
    except (ValueError, TypeError) as exc:
        raise WrongPassphrase(f"cannot open {path}: wrong passphrase or not a PKCS#8 key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: only RSA and ECDSA keys are supported")
    return key
