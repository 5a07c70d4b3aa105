"""End to end with a CA Kyso did not make (issue 2.7): its root and issuing CA in Kyso's trust
store (`kyso trust add`), an agency's seal certificate of it registered in the directory
(`kyso directory certificate add`), its OCSP answered by `openssl ocsp` and its CRL served over
HTTP (tests/foreignca.py).

- A package sealed with that certificate, carrying a PDF an officer signed with a personal
  certificate of the same CA (registered nowhere), goes through the relay to its recipient's
  inbox; `kyso verify` and the auditor page name the CA as trusted and show the subjects'
  Vietnamese attributes.
- A certificate of the trusted CA registered to another agency is refused as `sender-mismatch`;
  one of a CA outside the trust store is refused, the report saying so in plain words.
- Once the CA revokes the seal (`openssl ca -revoke`, the responder restarted), new packages
  are refused with REVOKED.

The relay runs in this process (the app `kyso serve` would serve), the CA's servers on
loopback, which KYSO_REVOCATION_ALLOW allows here explicitly.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pyhanko.sign.signers import SimpleSigner

from certs.keystore import SigningKey
from exchange.auth import Principal, Role
from exchange.errors import CertificateRefused, SenderMismatch, SignatureRejected
from exchange.relay import Relay
from kyso.app import SERVICES_KEY, create_app
from kyso.config import Settings
from kyso.samples import decision_pdf
from signer import edxml, xml_signing
from signer.pdf import PdfSignOptions, sign

from .conftest import PASSPHRASE, KysoEnv
from .exchangetools import HUNG_DUNG, VINH, ExchangeEnv, clone_env, package_bytes
from .foreignca import ForeignCA, foreign_ca
from .webtools import csrf_from

pytestmark = pytest.mark.system

SEAL_SUBJECT = "/UID=MST:0101234567"
OFFICER_SUBJECT = "/title=Chanh Van phong/UID=CCCD:040123456789"
AUDITOR_PASSWORD = "kiem-tra-chu-ky-2026"


@dataclass
class World:
    env: ExchangeEnv
    ca: ForeignCA
    stranger: ForeignCA  # a CA outside the trust store
    app: Flask
    relay: Relay
    tmp: Path


def _key(ca: ForeignCA, name: str) -> SigningKey:
    """``name``'s key and certificate from the foreign CA's files, with its issuing CA."""
    folder = ca.directory
    signer = SimpleSigner.load(
        str(folder / f"{name}.key"), str(folder / f"{name}.pem"), (str(folder / "issuing.pem"),)
    )
    assert signer is not None
    return SigningKey(f"foreign:{name}", signer, ca.certificate(name), (ca.issuing,))


def _app(env: ExchangeEnv) -> Flask:
    settings = {**env.env, "KYSO_EXCHANGE_WORKER": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("KYSO_")]:
            patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, value)
        return create_app(Settings.load(), PASSPHRASE.encode())


@pytest.fixture(scope="module")
def world(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("foreign-trust")
    env, cleanup = clone_env(kyso_env, tmp / "kyso", KYSO_REVOCATION_ALLOW="*, 127.0.0.0/8")
    stranger = ForeignCA.create(tmp / "stranger-ca", root_crl=True)
    stranger.issue("seal", "UBND phuong Hung Dung", subject=SEAL_SUBJECT)
    with foreign_ca(tmp / "gov-ca", root_crl=True) as ca:
        ca.issue("seal", "UBND phuong Hung Dung", subject=SEAL_SUBJECT)
        ca.issue("officer", "Nguyen Van An", subject=OFFICER_SUBJECT)
        ca.issue("vinh", "UBND thanh pho Vinh", subject="/UID=MST:2900325910")
        # Answers without nextUpdate are never cached: a revocation shows at the next check.
        ca.restart_ocsp(next_update_minutes=None)
        env.kyso("trust", "add", "gov-root", str(ca.directory / "root.pem"))
        env.kyso("trust", "add", "gov-issuing", str(ca.directory / "issuing.pem"))
        env.kyso("directory", "certificate", "add", HUNG_DUNG, str(ca.directory / "seal.pem"))
        env.kyso("directory", "certificate", "add", VINH, str(ca.directory / "vinh.pem"))
        env.kyso("directory", "certificate", "add", HUNG_DUNG, str(stranger.directory / "seal.pem"))
        env.cli(
            "accounts", "add", "kiem-tra", "--name", "Kiểm Tra", "--role", "auditor",
            "--password-stdin", input=AUDITOR_PASSWORD + "\n",
        )  # fmt: skip
        app = _app(env)
        relay: Relay = app.extensions[SERVICES_KEY].exchange.relay
        yield World(env, ca, stranger, app, relay, tmp)
    cleanup()


def _officer_pdf(world: World) -> bytes:
    signed = world.tmp / "cong-van-signed.pdf"
    source = decision_pdf(world.tmp / "cong-van.pdf").path
    with _key(world.ca, "officer") as officer:
        sign(source, signed, officer, PdfSignOptions())
    return signed.read_bytes()


def _package(world: World, key: SigningKey, pdf: bytes | None = None) -> bytes:
    attachments = (
        [edxml.Attachment("cid:cong-van", "cong-van.pdf", "application/pdf", pdf)]
        if pdf is not None
        else None
    )
    unsigned = package_bytes(world.env, HUNG_DUNG, [VINH], attachments=attachments)
    with key:
        return xml_signing.sign_xml(unsigned, key)


def _send(world: World, package: bytes) -> Any:
    return world.relay.accept(Principal(Role.AGENCY, HUNG_DUNG), package)


def _verify(world: World, path: Path) -> dict[str, Any]:
    result = world.env.kyso("verify", str(path), "--json", check=False)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _auditor_page(world: World, name: str, document: bytes) -> str:
    client = world.app.test_client()
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "kiem-tra", "password": AUDITOR_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302, response.text
    token = csrf_from(client.get("/verify").text)
    answer = client.post(
        "/verify",
        data={"document": (io.BytesIO(document), name)},
        headers={"X-CSRF-Token": token},
        follow_redirects=True,
    )
    assert answer.status_code == 200, answer.text[:500]
    return answer.text


def test_a_foreign_seal_and_officer_go_through_the_relay_and_verify(world: World) -> None:
    pdf = _officer_pdf(world)
    package = _package(world, _key(world.ca, "seal"), pdf)

    accepted = _send(world, package)

    assert accepted.created
    seal = world.ca.certificate("seal")
    assert accepted.message.signer_serial == format(seal.serial_number, "X")
    services = world.app.extensions[SERVICES_KEY]
    inbox = services.exchange.mailbox.inbox(Principal(Role.AGENCY, VINH))
    assert accepted.message.id in {item.message.id for item in inbox.items}

    (world.tmp / "package.xml").write_bytes(package)
    (world.tmp / "attached.pdf").write_bytes(pdf)
    as_package = _verify(world, world.tmp / "package.xml")
    [signature] = as_package["signatures"]
    assert as_package["passed"] and signature["issuer_path"] == ["gov-issuing", "gov-root"]
    assert signature["signer"]["subject_info"]["tax_code"] == "0101234567"
    assert signature["signer"]["agency_code"] is None  # a UID names an agency in Kyso's only
    as_pdf = _verify(world, world.tmp / "attached.pdf")
    [officer] = as_pdf["signatures"]
    assert as_pdf["passed"] and officer["issuer_path"] == ["gov-issuing", "gov-root"]
    holder = officer["signer"]["subject_info"]
    assert (holder["citizen_id"], holder["title"]) == ("040123456789", "Chanh Van phong")

    text = world.env.kyso("verify", str(world.tmp / "attached.pdf")).stdout
    assert "issued under gov-issuing ← gov-root (trusted)" in text
    assert "citizen_id: 040123456789" in text

    page = _auditor_page(world, "cong-van.pdf", pdf)
    assert 'data-indication="TOTAL_PASSED"' in page
    assert "gov-issuing ← gov-root" in page and "040123456789" in page
    assert "Chanh Van phong" in page


def test_a_trusted_cas_certificate_of_another_agency_is_sender_mismatch(world: World) -> None:
    with pytest.raises(SenderMismatch) as refused:
        _send(world, _package(world, _key(world.ca, "vinh")))
    assert VINH in str(refused.value)  # answered 403 sender-mismatch (kyso/problems.py)


def test_a_certificate_of_an_untrusted_ca_is_refused_and_the_report_says_why(
    world: World,
) -> None:
    package = _package(world, _key(world.stranger, "seal"))
    with pytest.raises(SignatureRejected) as refused:
        _send(world, package)
    assert "NO_CERTIFICATE_CHAIN_FOUND" in str(refused.value)
    [signature] = refused.value.extensions["report"]["signatures"]
    assert signature["indication"] == "INDETERMINATE" and signature["issuer_path"] == []
    assert "is not in Kyso's trust store" in signature["explanation_en"]
    assert any("not in Kyso's trust store" in d for d in signature["details"])


def test_after_the_ca_revokes_the_seal_new_packages_are_refused(world: World) -> None:
    world.ca.revoke("seal")
    world.ca.restart_ocsp(next_update_minutes=None)
    world.relay.trust.invalidate()  # a new policy: no verdict kept from before the revocation
    with pytest.raises(CertificateRefused) as refused:
        _send(world, _package(world, _key(world.ca, "seal")))
    [signature] = refused.value.extensions["report"]["signatures"]
    assert signature["sub_indication"] == "REVOKED"
