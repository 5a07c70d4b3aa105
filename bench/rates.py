"""Throughput figures: Kyso next to raw cryptography and to the libraries called directly."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

Row = str


def rate(operation: Callable[[], object], seconds: float = 2.0, minimum: int = 5) -> float:
    """Operations per second, over at least ``seconds`` and ``minimum`` calls (after a warm-up)."""
    operation()
    count = 0
    start = time.perf_counter()
    while count < minimum or time.perf_counter() - start < seconds:
        operation()
        count += 1
    return count / (time.perf_counter() - start)


def row(figure: str, kyso: float, baseline_name: str, baseline: float, unit: str = "/s") -> Row:
    return (
        f"| {figure} | {kyso:,.0f}{unit} | {baseline_name} {baseline:,.0f}{unit} | "
        f"{kyso / baseline:.2f}× |"
    )


@dataclass(frozen=True)
class BenchPki:
    key_file: Path
    passphrase: bytes
    root: Path
    tsa_url: str


@contextlib.contextmanager
def libraries_as_shipped() -> Iterator[None]:
    """Run a baseline without Kyso's process-wide speed-ups of pyHanko and asn1crypto (hex
    strings read a block at a time, X.509 names compared and hashed through a cache)."""
    from certs import patches

    with patches.removed(patches.HEX_STRINGS, patches.NAME_EQUALITY):
        yield


def baseline_rate(operation: Callable[[], object]) -> float:
    """:func:`rate` of a third-party baseline, with the libraries as shipped."""
    with libraries_as_shipped():
        return rate(operation)


def raw_rsa_rate(pki: BenchPki) -> float:
    from certs.keyfile import load_pkcs12

    key = load_pkcs12(pki.key_file, pki.passphrase).private_key
    digest = b"\x01" * 32
    return rate(lambda: key.sign(digest, padding.PKCS1v15(), hashes.SHA256()))  # type: ignore[union-attr]


def pdf_sign_rows(pki: BenchPki, sample: bytes) -> list[Row]:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from certs.keystore import open_key
    from signer.levels import Level
    from signer.pdf import PdfSignOptions, sign_stream

    raw = raw_rsa_rate(pki)
    shipped = signers.SimpleSigner.load_pkcs12(str(pki.key_file), passphrase=pki.passphrase)
    assert shipped is not None
    key = open_key(f"p12:{pki.key_file}", pki.passphrase)
    rows = []
    for level in (Level.B_B, Level.B_T):
        stamper = HTTPTimeStamper(pki.tsa_url) if level.timestamped else None
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )

        def pyhanko_sign(meta=meta, stamper=stamper) -> None:  # type: ignore[no-untyped-def]
            writer = IncrementalPdfFileWriter(io.BytesIO(sample))
            signers.sign_pdf(writer, meta, signer=shipped, timestamper=stamper, output=io.BytesIO())

        options = PdfSignOptions(level=level, tsa_url=pki.tsa_url)

        def kyso_sign(options=options) -> None:  # type: ignore[no-untyped-def]
            sign_stream(io.BytesIO(sample), io.BytesIO(), key, options, "bench.pdf")

        kyso = rate(kyso_sign)
        rows.append(
            row(
                f"PDF sign {level}, 1 page, one core",
                kyso,
                "pyHanko as shipped",
                baseline_rate(pyhanko_sign),
            )
        )
        rows.append(row(f"PDF sign {level} vs raw RSA-2048 signing", kyso, "raw RSA", raw))
    return rows


def pdf_verify_rows(pki: BenchPki, signed: bytes) -> list[Row]:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from certs.keystore import to_asn1
    from certs.truststore import load_certificates
    from signer.checkcache import CertificateCheckCache
    from signer.pdf_verify import verify_pdf
    from signer.policy import ValidationPolicy
    from signer.revcache import RevocationCache

    roots = tuple(load_certificates(pki.root))
    policy = ValidationPolicy(roots, cache=RevocationCache())
    relay_policy = ValidationPolicy(roots, cache=RevocationCache(), checks=CertificateCheckCache())

    def kyso_verify() -> None:
        assert verify_pdf(io.BytesIO(signed), policy).passed

    def kyso_verify_kept() -> None:
        assert verify_pdf(io.BytesIO(signed), relay_policy).passed

    def pyhanko_verify() -> None:
        context = ValidationContext(trust_roots=[to_asn1(c) for c in roots], allow_fetching=True)
        reader = PdfFileReader(io.BytesIO(signed))
        status = validate_pdf_signature(reader.embedded_signatures[0], context)
        assert status.bottom_line

    pyhanko = baseline_rate(pyhanko_verify)
    return [
        row(
            "PDF verify (online revocation, cached within validity)",
            rate(kyso_verify),
            "pyHanko validation",
            pyhanko,
        ),
        row(
            "PDF verify (signer's verdict kept 5 min, as the relay)",
            rate(kyso_verify_kept),
            "pyHanko validation",
            pyhanko,
        ),
    ]


def xml_rows(pki: BenchPki, package: bytes) -> list[Row]:
    from lxml import etree
    from signxml import XMLSigner, XMLVerifier

    from certs.keyfile import load_pkcs12
    from certs.keystore import open_key
    from certs.truststore import load_certificates
    from signer.checkcache import CertificateCheckCache
    from signer.policy import ValidationPolicy
    from signer.revcache import RevocationCache
    from signer.xml_signing import sign_xml, verify_xml

    key = open_key(f"p12:{pki.key_file}", pki.passphrase)
    bundle = load_pkcs12(pki.key_file, pki.passphrase)
    signer = XMLSigner(c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")

    def signxml_sign() -> bytes:
        root = etree.fromstring(package)
        signed = signer.sign(root, key=bundle.private_key, cert=[bundle.certificate])
        return etree.tostring(signed)

    kyso_signed = sign_xml(package, key)
    roots = tuple(load_certificates(pki.root))
    policy = ValidationPolicy(roots, cache=RevocationCache())
    relay_policy = ValidationPolicy(roots, cache=RevocationCache(), checks=CertificateCheckCache())
    signxml_signed = signxml_sign()

    def kyso_verify() -> None:
        assert verify_xml(kyso_signed, policy).passed

    def kyso_verify_kept() -> None:
        assert verify_xml(kyso_signed, relay_policy).passed

    def signxml_verify() -> None:
        XMLVerifier().verify(signxml_signed, ca_pem_file=None, x509_cert=bundle.certificate)

    kyso_rate = rate(lambda: sign_xml(package, key))
    return [
        row("XAdES B-B sign (edXML package)", kyso_rate, "signxml", baseline_rate(signxml_sign)),
        row("XAdES B-B sign vs raw RSA-2048 signing", kyso_rate, "raw RSA", raw_rsa_rate(pki)),
        row(
            "XAdES verify (path + cached revocation)",
            rate(kyso_verify),
            "signxml verify",
            baseline_rate(signxml_verify),
        ),
        row(
            "XAdES verify (signer's verdict kept 5 min, as the relay)",
            rate(kyso_verify_kept),
            "signxml verify",
            baseline_rate(signxml_verify),
        ),
    ]


def best_of_interleaved(
    measure: Callable[[int], float], configurations: tuple[int, ...], rounds: int = 3
) -> dict[int, float]:
    """The best of ``rounds`` measurements of each configuration, taken in turns: a run
    lasts a second or two, and a pause of the machine in one of them would decide a ratio."""
    best: dict[int, float] = {}
    for _ in range(rounds):
        for configuration in configurations:
            best[configuration] = max(best.get(configuration, 0.0), measure(configuration))
    return best


def batch_rows(pki: BenchPki, sample: bytes, work: Path, count: int = 200) -> list[Row]:
    import os

    from signer.batch import sign_many
    from signer.pdf import PdfSignOptions

    sources = []
    for index in range(count):
        path = work / "batch-in" / f"doc-{index:03d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample)
        sources.append(path)

    def batch(workers: int) -> float:
        start = time.perf_counter()
        items = sign_many(
            sources,
            work / f"batch-out-{workers}",
            f"p12:{pki.key_file}",
            pki.passphrase,
            PdfSignOptions(),
            workers=workers,
        )
        assert all(item.result for item in items)
        return count / (time.perf_counter() - start)

    cores = os.cpu_count() or 1
    signing = best_of_interleaved(batch, (1, cores))
    ceiling = best_of_interleaved(lambda n: raw_rsa_processes_rate(pki, n), (1, cores))
    return [
        row(f"batch sign {count} PDFs, {cores} cores (best of 3)", signing[cores], "one core",
            signing[1]),
        row(f"the machine's ceiling: raw RSA signing, {cores} processes (best of 3)",
            ceiling[cores], "one process", ceiling[1]),
    ]  # fmt: skip


def raw_rsa_processes_rate(pki: BenchPki, processes: int) -> float:
    """Raw RSA signatures per second of ``processes`` processes signing at once: how much
    more than one core the cores give at all (shared caches, frequency, hyperthreads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        return sum(pool.map(raw_rsa_rate, [pki] * processes))
