"""`kyso sign xml` (XAdES, enveloped) and `kyso sign cms` (CAdES, detached).

Both take a key reference (``p12:PATH`` or a ``pkcs11:`` URI) and a level: B-B, or B-T with
a signature timestamp from Kyso's TSA (``--tsa-url``, by default the local PKI's
``{base_url}/pki/tsa``). Bad input exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from signer.errors import DocumentTooLarge, SigningFailed
from signer.levels import Level

from .cli_common import Context, KysoCommand, console, default_tsa_url, pass_context

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

    from certs.keystore import SigningKey

LEVELS = click.Choice([Level.B_B.value, Level.B_T.value])


def _timestamper(obj: Context, level: str, tsa_url: str | None) -> TimeStamper | None:
    from pyhanko.sign.timestamps import HTTPTimeStamper

    if level != Level.B_T:
        return None
    url = tsa_url or default_tsa_url(obj.settings)
    if not url:
        raise SigningFailed(f"B-T needs --tsa-url (no local PKI in {obj.settings.pki_dir})")
    return HTTPTimeStamper(url, timeout=10)


def _write(output: Path, data: bytes) -> None:
    """Write through a temporary file and rename: a failed run never leaves half a file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _signing_options(f: Any) -> Any:
    options: list[Callable[[Any], Any]] = [
        click.argument(
            "source", metavar="IN", type=click.Path(exists=True, dir_okay=False, path_type=Path)
        ),
        click.option(
            "-o",
            "--output",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Where to write the result.",
        ),
        click.option(
            "--key", "key_ref", required=True, help="Signing key: p12:PATH or a pkcs11: URI."
        ),
        click.option(
            "--level",
            type=LEVELS,
            default=Level.B_B.value,
            show_default=True,
            help="B-B, or B-T with a signature timestamp.",
        ),
        click.option("--tsa-url", help="RFC 3161 TSA for B-T (default: the local PKI's)."),
        pass_context,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _done(kind: str, source: Path, output: Path, level: str, key: SigningKey) -> None:
    from signer.report import CertificateInfo

    who = CertificateInfo.of(key.certificate).common_name
    console.print(f"signed {source} → {output} ({kind} {level}, {who})")


@click.command("xml", cls=KysoCommand)
@_signing_options
def sign_xml(
    obj: Context, source: Path, output: Path, key_ref: str, level: str, tsa_url: str | None
) -> None:
    """Sign an XML document (edXML package, status message…) with enveloped XAdES.

    edXML packages and status messages are validated against their schemas first.
    """
    from signer import safexml, xml_signing

    size = source.stat().st_size
    if size > safexml.MAX_XML_BYTES:
        raise DocumentTooLarge(f"{source.name} is {size} bytes, over {safexml.MAX_XML_BYTES}")
    data = source.read_bytes()
    timestamper = _timestamper(obj, level, tsa_url)
    with obj.open_key(key_ref) as key:
        signed = xml_signing.sign_xml(data, key, level=Level(level), timestamper=timestamper)
        _write(output, signed)
        _done("XAdES", source, output, level, key)


@click.command("cms", cls=KysoCommand)
@_signing_options
def sign_cms(
    obj: Context, source: Path, output: Path, key_ref: str, level: str, tsa_url: str | None
) -> None:
    """Sign any file with a detached CAdES signature (conventionally IN.p7s)."""
    from signer import cades

    timestamper = _timestamper(obj, level, tsa_url)
    with obj.open_key(key_ref) as key, source.open("rb") as content:
        signature = cades.sign_cms(content, key, level=Level(level), timestamper=timestamper)
        _write(output, signature)
        _done("CAdES", source, output, level, key)
