"""certs.keystore.LoadedKeySigner encodes the ESS signing-certificate-v2 attribute once; the
attribute in every signature is still exactly the one pyHanko would build."""

from __future__ import annotations

import io
from pathlib import Path

from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute

from certs.keystore import LoadedKeySigner, open_key
from kyso.samples import decision_pdf
from signer.pdf import PdfSignOptions, sign_stream

from .conftest import PASSPHRASE, KysoEnv


def ess_attribute(signed: bytes) -> bytes:
    reader = PdfFileReader(io.BytesIO(signed))
    signer_info = reader.embedded_signatures[-1].signer_info
    [attribute] = [
        a for a in signer_info["signed_attrs"] if a["type"].native == "signing_certificate_v2"
    ]
    return bytes(attribute.dump())


def test_each_signature_carries_pyhankos_own_attribute(kyso_env: KysoEnv, tmp_path: Path) -> None:
    key_file = kyso_env.data / "pki" / "keys" / "seal-000.00.00.H41.p12"
    source = decision_pdf(tmp_path / "qd.pdf").path.read_bytes()
    with open_key(f"p12:{key_file}", PASSPHRASE.encode()) as key:
        assert isinstance(key.signer, LoadedKeySigner)
        expected = simple_cms_attribute(
            "signing_certificate_v2", as_signing_certificate_v2(key.signer.signing_cert)
        ).dump()
        first, second = io.BytesIO(), io.BytesIO()
        sign_stream(io.BytesIO(source), first, key, PdfSignOptions(), "qd.pdf")
        sign_stream(io.BytesIO(first.getvalue()), second, key, PdfSignOptions(), "qd.pdf")
    assert ess_attribute(first.getvalue()) == expected
    assert ess_attribute(second.getvalue()) == expected
    assert cms.CMSAttribute.load(expected)["values"][0]["certs"][0]["cert_hash"].native
