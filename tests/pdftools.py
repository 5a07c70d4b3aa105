"""Helpers for PDF tests: sample documents, signing with demo keys, external checkers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

from certs.keystore import SigningKey, open_key
from certs.truststore import load_certificates
from certs.tsa import InProcessTimeStamper
from kyso.samples import decision_pdf
from signer.levels import Level
from signer.pdf import PdfSignOptions, PdfSignResult, sign
from signer.pdf_verify import verify_pdf
from signer.policy import ValidationPolicy
from signer.report import Report

from .conftest import PASSPHRASE, KysoEnv


def sample(tmp_path: Path, name: str = "quyet-dinh.pdf", **kwargs) -> Path:
    return decision_pdf(tmp_path / name, **kwargs).path


def key_ref(env: KysoEnv, name: str) -> str:
    return f"p12:{env.pki / 'keys' / f'{name}.p12'}"


def sign_with(
    env: KysoEnv,
    source: Path,
    output: Path,
    key: str,
    level: Level = Level.B_B,
    over_http: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
    **options,
) -> PdfSignResult:
    """Sign with a demo key; the PKI's TSA and OCSP are called in process, or, ``over_http``,
    at the PKI's URLs (a running `kyso serve`: system tests only). ``clock``: the time the
    signature claims and, in process, the TSA's (a test signs in the past instead of
    sleeping)."""
    if over_http:
        transport: dict = {"tsa_url": f"{env.url}/pki/tsa"}
    else:
        tsa = env.pki_services.tsa
        tsa = tsa if clock is None else dataclasses.replace(tsa, clock=clock)
        transport = {"timestamper": InProcessTimeStamper(tsa)}
    if clock is not None:
        transport["clock"] = clock
    policy = trusting(env, local=not over_http)
    with open_key(key_ref(env, key), PASSPHRASE.encode()) as signing_key:
        return sign(
            source,
            output,
            signing_key,
            PdfSignOptions(level=level, policy=policy, **transport, **options),
        )


def trusting(env: KysoEnv, local: bool = True, **kwargs) -> ValidationPolicy:
    """A policy trusting the demo root; ``local``: its OCSP and CRLs answered in process."""
    answers = env.pki_services.answer if local else None
    return ValidationPolicy(tuple(load_certificates(env.root)), local=answers, **kwargs)


def verify_with(
    env: KysoEnv, path: Path, offline: bool = False, over_http: bool = False, **kwargs
) -> Report:
    """Kyso's verdict under :func:`trusting`; ``over_http`` fetches OCSP and CRLs from the
    PKI's URLs (a running `kyso serve`)."""
    return verify_pdf(path, trusting(env, local=not over_http, offline=offline, **kwargs))


def nss_db(env: KysoEnv, directory: Path) -> str:
    """An NSS database trusting the demo root, for pdfsig."""
    if not (directory / "cert9.db").exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True)
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                f"sql:{directory}",
                "-n",
                "kyso-root",
                "-t",
                "CT,C,C",
                "-i",
                str(env.root),
            ],
            check=True,
        )
    return f"sql:{directory}"


def pdfsig(path: Path, nssdir: str | None = None) -> str:
    args = ["pdfsig"] + (["-nssdir", nssdir] if nssdir else []) + [str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout


def qpdf_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)


def stranger_key(common_name: str, organization: str | None = None) -> SigningKey:
    """A signing key whose self-made certificate (digitalSignature, nonRepudiation) no CA Kyso
    knows has issued: what an attacker, or an agency outside the province, signs with."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from certs.keyfile import KeyBundle
    from certs.keystore import signer_from_bundle

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    bundle = KeyBundle(key, certificate)
    return SigningKey("stranger", signer_from_bundle(bundle), certificate)
