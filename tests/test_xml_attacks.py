"""Attacks on XML verifiers: hostile XML is refused before parsing, wrapping never passes.

Each wrapping case is built from a real Kyso signature; where a generic XML-DSig verifier
(xmlsec1) still accepts the forged document, the test says so, to show that the refusal is
Kyso's own rule and not an accident of a broken digest.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from certs.keyfile import load_pkcs12
from signer import edxml, safexml, xml_signing
from signer.errors import DocumentTooLarge, HostileXml, InvalidDocument, UnsupportedFormat
from signer.report import Indication, SubIndication

from .bounds import bounded
from .conftest import PASSPHRASE, KysoEnv, xmlsec1_verify
from .test_xml_signing import SEAL, policy, sample_package, sample_status, sign

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
DS = f"{{{DS_NS}}}"
XADES = f"{{{XADES_NS}}}"
ED = f"{{{edxml.NS}}}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


@pytest.fixture(scope="module")
def signed_package(kyso_env: KysoEnv) -> bytes:
    """A package signed by the province's seal; offline, its verdict is TRY_LATER (intact)."""
    signed = sign(kyso_env, edxml.build_package(sample_package()))
    [baseline] = xml_signing.verify_xml(signed, policy(kyso_env, offline=True)).signatures
    assert baseline.sub_indication is SubIndication.TRY_LATER, baseline.details
    return signed


def verdict(env: KysoEnv, data: bytes):
    with bounded("XML verification"):  # the time and memory bounds of every attack
        verification = xml_signing.verify_document(data, policy(env, offline=True))
    [signature] = verification.report.signatures
    return verification, signature


def assert_failed(env: KysoEnv, data: bytes, sub: SubIndication, words: str) -> None:
    verification, signature = verdict(env, data)
    assert signature.indication is Indication.TOTAL_FAILED, signature.details
    assert signature.sub_indication is sub, signature.details
    assert any(words in d for d in signature.details), signature.details
    assert verification.signed_content is None and verification.signed_tree is None
    assert not verification.report.passed


def tree_of(data: bytes):
    return etree.fromstring(data).getroottree()


def serialize(tree) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def xmlsec1_accepts(env: KysoEnv, tmp_path: Path, data: bytes, *extra: str) -> bool:
    path = tmp_path / "candidate.xml"
    path.write_bytes(data)
    if extra:
        result = subprocess.run(
            ["xmlsec1", "--verify", *extra, "--trusted-pem", str(env.root),
             "--untrusted-pem", str(env.issuing), str(path)],
            capture_output=True,
            text=True,
        )  # fmt: skip
        return result.returncode == 0
    return xmlsec1_verify(env, path).returncode == 0


def resign(env: KysoEnv, tree, content_uri: str, transforms: list[str]) -> bytes:
    """Re-point the content reference and sign again with the seal's real key.

    This makes a cryptographically valid signature of another shape, as another tool (or a
    signer tricked into it) would: the verifier must refuse the shape, not the math.
    """
    signature = tree.getroot().find(f".//{DS}Signature")
    reference = signature.find(f"{DS}SignedInfo/{DS}Reference")
    reference.set("URI", content_uri)
    holder = reference.find(f"{DS}Transforms")
    for transform in list(holder):
        holder.remove(transform)
    for algorithm in transforms:
        etree.SubElement(holder, f"{DS}Transform", Algorithm=algorithm)
    target = next(e for e in tree.iter() if e.get("Id") == content_uri[1:])
    covered = etree.tostring(target, method="c14n", exclusive=True, with_comments=False)
    reference.find(f"{DS}DigestValue").text = base64.b64encode(
        hashlib.sha256(covered).digest()
    ).decode()
    signed_info = etree.tostring(
        signature.find(f"{DS}SignedInfo"), method="c14n", exclusive=True, with_comments=False
    )
    bundle = load_pkcs12(env.pki / "keys" / f"{SEAL}.p12", PASSPHRASE.encode())
    value = bundle.private_key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
    signature.find(f"{DS}SignatureValue").text = base64.b64encode(value).decode()
    return serialize(tree)


# --- Signature wrapping --------------------------------------------------------------------


def test_signed_properties_moved_and_forged_ones_put_in_their_place(
    kyso_env: KysoEnv, signed_package: bytes, tmp_path: Path
) -> None:
    tree = tree_of(signed_package)
    signature = tree.getroot().find(f".//{DS}Signature")
    qualifying = signature.find(f"{DS}Object/{XADES}QualifyingProperties")
    original = qualifying.find(f"{XADES}SignedProperties")
    forged = copy.deepcopy(original)
    forged.set("Id", "forged-properties")
    forged.find(f".//{XADES}SigningTime").text = "2020-01-01T08:00:00+07:00"
    # The referenced (real) properties move to another ds:Object; the forged ones take
    # their place, where an application would look for the signing time.
    etree.SubElement(signature, f"{DS}Object").append(original)
    qualifying.insert(0, forged)
    attacked = serialize(tree)
    assert xmlsec1_accepts(kyso_env, tmp_path, attacked)  # plain XML-DSig sees nothing wrong
    assert_failed(
        kyso_env, attacked, SubIndication.FORMAT_FAILURE, "not point at this signature's own"
    )


def test_signed_header_moved_and_a_forged_one_put_in_its_place(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    signature = tree.getroot().find(f".//{DS}Signature")
    header = tree.getroot().find(f".//{ED}MessageHeader")
    forged = copy.deepcopy(header)
    forged.find(f"{ED}Subject").text = "Về việc cấp 10 tỷ đồng"
    # The signed header hides in a ds:Object of the signature (the schema does not look
    # inside ds:Signature); the forged one sits where an application reads the header.
    header.addnext(forged)
    etree.SubElement(signature, f"{DS}Object").append(header)
    attacked = serialize(tree)
    assert edxml.validate(safexml.parse(attacked)) is edxml.DocumentKind.PACKAGE
    assert_failed(kyso_env, attacked, SubIndication.HASH_FAILURE, "changed after signing")


def test_signed_package_wrapped_inside_the_signature_is_refused(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    original = tree_of(signed_package)
    signature = original.getroot().find(f".//{DS}Signature")
    forged = tree_of(edxml.build_package(sample_package(subject="Về việc cấp 10 tỷ đồng")))
    holder = etree.SubElement(signature, f"{DS}Object")
    holder.append(copy.deepcopy(original.getroot()))
    inner = holder[0].find(f".//{DS}Signature")
    inner.getparent().remove(inner)
    forged.getroot().find(f"{ED}edXMLEnvelope/{ED}edXMLHeader").append(signature)
    # A whole package inside the signature is still schema-checked (lax content): two
    # packages' attachments collide before any signature processing.
    with pytest.raises(InvalidDocument, match="not a valid edXML package"):
        xml_signing.verify_xml(serialize(forged), policy(kyso_env, offline=True))


@pytest.mark.parametrize(
    "attribute", ["Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id"]
)
def test_duplicate_ids_fail(kyso_env: KysoEnv, signed_package: bytes, attribute: str) -> None:
    tree = tree_of(signed_package)
    signature = tree.getroot().find(f".//{DS}Signature")
    properties = signature.find(f".//{XADES}SignedProperties")
    decoy = etree.SubElement(etree.SubElement(signature, f"{DS}Object"), f"{XADES}SignedProperties")
    decoy.set(attribute, properties.get("Id"))
    assert_failed(kyso_env, serialize(tree), SubIndication.FORMAT_FAILURE, "duplicate Id")


def test_reference_covering_another_element_than_the_one_read_fails(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    # A valid signature (made with the real key) that covers only <Item Id="item">; the
    # total an application reads next to it is not signed.
    document = b'<Order xmlns="urn:kyso:test"><Item Id="item">100</Item><Total>999</Total></Order>'
    tree = tree_of(sign(kyso_env, document))
    attacked = resign(kyso_env, tree, "#item", [EXC_C14N])
    assert xmlsec1_accepts(kyso_env, tmp_path, attacked, "--id-attr:Id", "urn:kyso:test:Item")
    assert_failed(kyso_env, attacked, SubIndication.FORMAT_FAILURE, "covers only #item")


def test_reference_to_a_forged_header_inside_the_signature_fails(
    kyso_env: KysoEnv, signed_package: bytes, tmp_path: Path
) -> None:
    tree = tree_of(signed_package)
    signature = tree.getroot().find(f".//{DS}Signature")
    carrier = etree.SubElement(signature, f"{DS}Object", Id="carrier")
    carrier.append(copy.deepcopy(tree.getroot().find(f".//{ED}MessageHeader")))
    attacked = resign(kyso_env, tree, "#carrier", [EXC_C14N])
    assert xmlsec1_accepts(kyso_env, tmp_path, attacked)
    assert_failed(kyso_env, attacked, SubIndication.FORMAT_FAILURE, "inside the signature itself")


def test_extra_unsigned_header_next_to_the_signed_one_is_refused(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    header = tree.getroot().find(f".//{ED}MessageHeader")
    forged = copy.deepcopy(header)
    forged.find(f"{ED}Subject").text = "Về việc cấp 10 tỷ đồng"
    header.addprevious(forged)
    # The schema allows one MessageHeader: refused before any signature processing.
    with pytest.raises(InvalidDocument, match="not a valid edXML package"):
        xml_signing.verify_xml(serialize(tree), policy(kyso_env, offline=True))


def test_extra_trace_header_allowed_by_the_schema_breaks_the_digest(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    trace = tree.getroot().find(f".//{ED}TraceHeader")
    trace.addnext(copy.deepcopy(trace))
    assert_failed(kyso_env, serialize(tree), SubIndication.HASH_FAILURE, "changed after signing")


def test_extra_unsigned_element_in_a_status_message_is_refused(kyso_env: KysoEnv) -> None:
    signed = sign(kyso_env, edxml.build_status(sample_status()), "seal-000.00.21.H41")
    injected = signed.replace(
        b"<edXML:StatusCode>03</edXML:StatusCode>",
        b"<edXML:StatusCode>06</edXML:StatusCode><edXML:StatusCode>03</edXML:StatusCode>",
    )
    assert injected != signed
    with pytest.raises(InvalidDocument, match="not a valid status message"):
        xml_signing.verify_xml(injected, policy(kyso_env, offline=True))


def test_comment_inserted_into_signed_text_fails(
    kyso_env: KysoEnv, signed_package: bytes, tmp_path: Path
) -> None:
    subject = "Về việc phê duyệt kế hoạch chuyển đổi số năm 2027".encode()
    attacked = signed_package.replace(
        subject, "Về việc phê duyệt<!-- --> kế hoạch chuyển đổi số năm 2027".encode()
    )
    assert attacked != signed_package
    # A naive reader now sees a truncated subject, and the digest still matches:
    naive = etree.fromstring(attacked).find(f".//{ED}Subject").text
    assert naive == "Về việc phê duyệt"
    assert xmlsec1_accepts(kyso_env, tmp_path, attacked)
    assert_failed(kyso_env, attacked, SubIndication.FORMAT_FAILURE, "comment(s) inside")


def test_changed_signing_time_breaks_the_signed_properties(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    tree.getroot().find(f".//{XADES}SigningTime").text = "2020-01-01T08:00:00+07:00"
    assert_failed(kyso_env, serialize(tree), SubIndication.HASH_FAILURE, "signed properties")


def test_flipped_signature_value_is_sig_crypto_failure(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    value = tree.getroot().find(f".//{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0x80
    value.text = base64.b64encode(bytes(raw)).decode()
    assert_failed(kyso_env, serialize(tree), SubIndication.SIG_CRYPTO_FAILURE, "does not verify")


def test_swapped_certificate_is_not_the_signing_certificate(
    kyso_env: KysoEnv, signed_package: bytes
) -> None:
    tree = tree_of(signed_package)
    first = tree.getroot().find(f".//{DS}X509Certificate")
    other = x509_der(kyso_env.cert("seal-000.00.21.H41"))
    first.text = base64.b64encode(other).decode()
    verification, signature = verdict(kyso_env, serialize(tree))
    assert signature.sub_indication is SubIndication.NO_SIGNING_CERTIFICATE_FOUND
    assert signature.indication is Indication.INDETERMINATE and not verification.report.passed
    assert verification.signed_content is None and verification.signed_tree is None


def x509_der(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.public_bytes(serialization.Encoding.DER)


def test_xslt_and_xpath_transforms_are_refused(kyso_env: KysoEnv, signed_package: bytes) -> None:
    for algorithm in (
        "http://www.w3.org/TR/1999/REC-xslt-19991116",
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
        "http://www.w3.org/2002/06/xmldsig-filter2",
    ):
        tree = tree_of(signed_package)
        transform = tree.getroot().find(f".//{DS}Transform")
        transform.set("Algorithm", algorithm)
        with pytest.raises(UnsupportedFormat, match="unsupported transform"):
            xml_signing.verify_xml(serialize(tree), policy(kyso_env, offline=True))


def test_a_second_signature_is_refused(kyso_env: KysoEnv, signed_package: bytes) -> None:
    tree = tree_of(signed_package)
    signature = tree.getroot().find(f".//{DS}Signature")
    signature.append(copy.deepcopy(signature))
    with pytest.raises(UnsupportedFormat, match="2 XML signatures"):
        xml_signing.verify_xml(serialize(tree), policy(kyso_env, offline=True))


# --- Hostile XML ---------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records every connection a parser might attempt."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.setblocking(False)
        yield server


def attempts(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def hostile(url: str) -> dict[str, tuple[bytes, type[Exception], str]]:
    laughs = b'<!ENTITY lol "lol">' + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    internal_dtd = '<!DOCTYPE a [<!ENTITY e "x">]>'
    dtd = re.escape("document type declarations (DTD) are not allowed")
    return {
        "xxe-network": (
            f'<!DOCTYPE a [<!ENTITY e SYSTEM "{url}/xxe">]><a>&e;</a>'.encode(),
            HostileXml,
            dtd,
        ),
        "xxe-file": (
            b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
            HostileXml,
            dtd,
        ),
        "external-dtd": (f'<!DOCTYPE a SYSTEM "{url}/dtd"><a/>'.encode(), HostileXml, dtd),
        "parameter-entity": (
            f'<!DOCTYPE a [<!ENTITY % p SYSTEM "{url}/p"> %p;]><a/>'.encode(),
            HostileXml,
            dtd,
        ),
        "billion-laughs": (
            b"<!DOCTYPE lolz [" + laughs + b"]><lolz>&lol9;</lolz>",
            HostileXml,
            dtd,
        ),
        "dtd-in-utf16": (
            f'<?xml version="1.0" encoding="UTF-16"?>{internal_dtd}<a>&e;</a>'.encode("utf-16"),
            HostileXml,
            dtd,
        ),
        "dtd-in-utf16-without-bom": (
            f"{internal_dtd}<a>&e;</a>".encode("utf-16-be"),
            HostileXml,
            dtd,
        ),
        "utf7-disguise": (
            b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE a+AD4-<a/>',
            HostileXml,
            "encoding 'UTF-7' is not accepted",
        ),
        "xinclude": (
            f'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{url}/x" '
            'parse="text"/></a>'.encode(),
            HostileXml,
            "XInclude is not allowed",
        ),
        "deep-nesting": (b"<a>" * 100 + b"</a>" * 100, HostileXml, "nested deeper than 64"),
        "deeper-than-libxml2": (
            b"<a>" * 5000 + b"</a>" * 5000,
            HostileXml,
            "nested deeper than 64",
        ),
        "too-large": (
            b"<a>" + b" " * safexml.MAX_XML_BYTES + b"</a>",
            DocumentTooLarge,
            "over the limit",
        ),
    }


CASES = list(hostile("http://127.0.0.1:9"))


@pytest.mark.parametrize("case", CASES)
def test_hostile_xml_is_refused_with_its_reason_and_no_connection(
    kyso_env: KysoEnv, listener: socket.socket, case: str
) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    data, error, reason = hostile(url)[case]
    with pytest.raises(error, match=reason), bounded(case):
        xml_signing.verify_xml(data, policy(kyso_env))
    with pytest.raises(error, match=reason):
        edxml.parse_package(data)
    assert attempts(listener) == 0


def test_references_and_schema_locations_are_never_fetched(
    kyso_env: KysoEnv, listener: socket.socket
) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    document = (
        f'<Doc xmlns="urn:kyso:test" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="urn:kyso:test {url}/schema.xsd">text</Doc>'
    ).encode()
    signed = sign(kyso_env, document)
    external = signed.replace(b'URI="#SignedProperties-', f'URI="{url}/props#x'.encode())
    assert external != signed
    assert_failed(kyso_env, external, SubIndication.FORMAT_FAILURE, "never dereferenced")
    verification, _ = verdict(kyso_env, signed)
    assert verification.signed_content is not None
    assert attempts(listener) == 0


@pytest.mark.system
def test_cli_verify_refuses_hostile_xml_with_exit_2(kyso_env: KysoEnv, tmp_path: Path) -> None:
    path = tmp_path / "xxe.xml"
    path.write_bytes(b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>')
    result = kyso_env.kyso("verify", str(path), check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: XML refused: document type declarations"), line
    assert "root:" not in result.stdout + result.stderr


@pytest.mark.system
def test_cli_verify_reports_wrapping_as_total_failed(
    kyso_env: KysoEnv, signed_package: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "commented.xml"
    path.write_bytes(signed_package.replace(b"</edXML:Subject>", b"<!--x--></edXML:Subject>"))
    result = kyso_env.kyso("verify", str(path), "--offline", check=False)
    assert result.returncode == 1
    assert "TOTAL_FAILED / FORMAT_FAILURE" in result.stdout


def test_the_depth_limit_is_exact() -> None:
    """64 levels pass, 65 do not (the libxml2 XPath walk counts the root as level 1)."""
    safexml.parse(b"<a>" * 64 + b"</a>" * 64)
    with pytest.raises(HostileXml, match="nested deeper than 64"):
        safexml.parse(b"<a>" * 65 + b"</a>" * 65)
    shallow = safexml.XmlLimits(max_depth=2)
    safexml.parse(b"<a><b/></a>", shallow)
    with pytest.raises(HostileXml, match="nested deeper than 2"):
        safexml.parse(b"<a><b><c/></b></a>", shallow)
