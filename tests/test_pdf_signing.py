"""PAdES B-B to B-LTA: interop with pdfsig and qpdf, and Kyso's own verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signer.levels import Level
from signer.report import Indication, SubIndication

from .conftest import KysoEnv, Server, free_port, self_signed_certificate, start_server
from .pdftools import nss_db, pdfsig, qpdf_check, sample, sign_with, verify_with


@pytest.mark.parametrize("level", [Level.B_B, Level.B_T])
def test_pdfsig_and_qpdf_accept_kyso_signatures(server: Server, tmp_path: Path, level) -> None:
    env = server.env
    signed = tmp_path / f"signed-{level}.pdf"
    result = sign_with(
        env,
        sample(tmp_path),
        signed,
        "person-nguyen-van-an",
        level,
        over_http=True,
        reason="Ký ban hành",
        location="Nghệ An",
    )
    assert result.level is level and result.signer.common_name == "Nguyễn Văn An"
    output = pdfsig(signed, nss_db(env, tmp_path / "nss"))
    assert "Signature Validation: Signature is Valid." in output, output
    assert "Certificate Validation: Certificate is Trusted." in output, output
    assert "Signer Certificate Common Name: Nguyễn Văn An" in output
    assert "ETSI.CAdES.detached" in output
    assert qpdf_check(signed).returncode == 0
    report = verify_with(env, signed, over_http=True)
    [signature] = report.signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == level.value
    assert signature.coverage == "ENTIRE_FILE"
    assert (signature.timestamp_time is not None) == (level is Level.B_T)
    assert {e.kind for e in signature.revocation} >= {"OCSP"}


def test_sequential_person_then_seal_both_valid(server: Server, tmp_path: Path) -> None:
    env = server.env
    first = tmp_path / "person.pdf"
    both = tmp_path / "person+seal.pdf"
    sign_with(env, sample(tmp_path), first, "person-nguyen-van-an", Level.B_T, over_http=True)
    sign_with(env, first, both, "seal-000.00.00.H41", Level.B_T, over_http=True)
    report = verify_with(env, both, over_http=True)
    assert [s.indication for s in report.signatures] == [Indication.TOTAL_PASSED] * 2
    person, seal = report.signatures
    assert person.signer.common_name == "Nguyễn Văn An"
    assert seal.signer.common_name == "UBND tỉnh Nghệ An"
    assert person.coverage == "ENTIRE_REVISION" and seal.coverage == "ENTIRE_FILE"
    assert len(person.changes) == 1 and person.changes[0].allowed
    assert "signatures added" in person.changes[0].description
    assert pdfsig(both, nss_db(env, tmp_path / "nss")).count("Signature is Valid.") == 2


def test_certification_signature_then_approval(server: Server, tmp_path: Path) -> None:
    env = server.env
    certified = tmp_path / "certified.pdf"
    sign_with(env, sample(tmp_path), certified, "seal-000.00.00.H41", certify=True, over_http=True)
    approved = tmp_path / "approved.pdf"
    sign_with(env, certified, approved, "person-nguyen-van-an", over_http=True)
    report = verify_with(env, approved, over_http=True)
    assert report.passed, [s.details for s in report.signatures]
    assert report.signatures[0].changes[0].allowed
    assert pdfsig(approved, nss_db(env, tmp_path / "nss")).count("Signature is Valid.") == 2


def test_revoked_before_signing_is_total_failed_revoked(kyso_env: KysoEnv, tmp_path: Path) -> None:
    env = kyso_env
    serial = env.issue_person("000.00.03.H41", "Bùi Văn Khánh", "Kế toán")
    env.revoke(serial, "keyCompromise")
    signed = tmp_path / "by-revoked.pdf"
    sign_with(env, sample(tmp_path), signed, "person-bui-van-khanh")
    [signature] = verify_with(env, signed).signatures
    assert signature.indication is Indication.TOTAL_FAILED
    assert signature.sub_indication is SubIndication.REVOKED
    assert "thu hồi" in signature.explanation_vi and "revoked" in signature.explanation_en


@pytest.mark.system
def test_untrusted_root_is_indeterminate_no_chain(server: Server, tmp_path: Path) -> None:
    env = server.env
    signed = tmp_path / "signed.pdf"
    sign_with(env, sample(tmp_path), signed, "person-nguyen-van-an")
    stranger = self_signed_certificate(tmp_path, "Other Root")
    result = env.kyso("verify", str(signed), "--trust", str(stranger), "--json", check=False)
    assert result.returncode == 1
    import json

    data = json.loads(result.stdout)
    signature = data["signatures"][0]
    assert signature["indication"] == "INDETERMINATE"
    assert signature["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    assert data["passed"] is False


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory):
    """A PKI of its own, whose server the test stops before verifying."""
    env = KysoEnv(tmp_path_factory.mktemp("offline"), free_port())
    env.kyso("pki", "init", "--base-url", env.url)
    return env


@pytest.mark.system
@pytest.mark.parametrize("level", [Level.B_LT, Level.B_LTA])
def test_long_term_levels_verify_offline_with_services_stopped(
    offline_env: KysoEnv, tmp_path: Path, level: Level
) -> None:
    process = start_server(offline_env)
    try:
        signed = tmp_path / f"{level}.pdf"
        sign_with(offline_env, sample(tmp_path), signed, "seal-000.00.21.H41", level)
        b_b = tmp_path / "b-b.pdf"
        sign_with(offline_env, sample(tmp_path, "other.pdf"), b_b, "seal-000.00.21.H41")
    finally:
        process.terminate()
        process.wait(timeout=10)
    [signature] = verify_with(offline_env, signed, offline=True).signatures
    assert signature.indication is Indication.TOTAL_PASSED, signature.details
    assert signature.level == level.value
    assert signature.revocation and all(e.source == "embedded" for e in signature.revocation)
    cli = offline_env.kyso("verify", str(signed), "--offline")
    assert "TOTAL_PASSED" in cli.stdout and f"level: {level}" in cli.stdout
    # Without embedded revocation data the same check cannot conclude.
    [plain] = verify_with(offline_env, b_b, offline=True).signatures
    assert plain.indication is Indication.INDETERMINATE
    assert plain.sub_indication is SubIndication.TRY_LATER


@pytest.mark.system
def test_validation_time_in_the_past(server: Server, tmp_path: Path) -> None:
    import datetime as dt

    env = server.env
    signed = tmp_path / "signed.pdf"
    sign_with(env, sample(tmp_path), signed, "person-nguyen-van-an", Level.B_T)
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # before the certificate existed
    [signature] = verify_with(env, signed, at=past).signatures
    assert signature.indication is Indication.INDETERMINATE
    assert signature.sub_indication is SubIndication.OUT_OF_BOUNDS_NO_POE
    # Through the CLI, --at takes ISO 8601 with an offset; a malformed time is a usage error.
    cli = env.kyso(
        "verify", str(signed), "--at", "2020-01-01T07:00:00+07:00", "--json", check=False
    )
    assert cli.returncode == 1 and "OUT_OF_BOUNDS_NO_POE" in cli.stdout
    bad = env.kyso("verify", str(signed), "--at", "last tuesday", check=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def archived_then_revoked(env: KysoEnv, tmp_path: Path, full_name: str, key: str):
    """A B-T and a B-B signature made three minutes ago (the signer's and the TSA's clocks set
    back: no sleeping), then the signer's certificate revoked one minute ago.

    Returns the two documents and a moment between the signatures and the revocation.
    """
    import datetime as dt

    from cryptography import x509

    from certs.clock import utcnow
    from certs.store import parse_serial

    now = utcnow()
    signed_at, between, revoked_at = (now - dt.timedelta(minutes=m) for m in (3, 2, 1))
    serial = env.issue_person("000.00.04.H41", full_name, "Chánh Văn phòng")
    stamped, plain = tmp_path / "b-t.pdf", tmp_path / "b-b.pdf"
    for path, level in ((stamped, Level.B_T), (plain, Level.B_B)):
        sign_with(env, sample(tmp_path), path, key, level, clock=lambda: signed_at)
    env.pki_services.pki.store.revoke(
        parse_serial(serial), x509.ReasonFlags.key_compromise, revoked_at
    )
    return stamped, plain, between


def test_archived_document_whose_signer_is_revoked_later(kyso_env: KysoEnv, tmp_path: Path):
    env = kyso_env
    stamped, plain, between = archived_then_revoked(
        env, tmp_path, "Hồ Thị Mai", "person-ho-thi-mai"
    )

    # Now: the timestamp proves the B-T signature existed before the revocation ...
    [proven] = verify_with(env, stamped).signatures
    assert proven.indication is Indication.TOTAL_PASSED, proven.details
    assert any("before revocation" in d for d in proven.details), proven.details
    # ... while the B-B signature only claims a time, which nothing proves.
    [claimed] = verify_with(env, plain).signatures
    assert (claimed.indication, claimed.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    ), claimed
    # As of a moment before the revocation, both were valid (the auditor's --at).
    for path in (stamped, plain):
        [then] = verify_with(env, path, at=between).signatures
        assert then.indication is Indication.TOTAL_PASSED, (path.name, then.details)


@pytest.mark.system
def test_cli_verifies_an_archived_document_as_of_before_the_revocation(
    server: Server, tmp_path: Path
) -> None:
    _, plain, between = archived_then_revoked(
        server.env, tmp_path, "Phan Thị Nga", "person-phan-thi-nga"
    )
    cli = server.env.kyso("verify", str(plain), "--at", between.isoformat(), "--json")
    assert json.loads(cli.stdout)["passed"] is True


def test_signature_space_too_small_is_retried_and_remembered(
    kyso_env: KysoEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signer.pdf as pdf_module

    monkeypatch.setattr(pdf_module, "CMS_OVERHEAD_BYTES", 10)
    monkeypatch.setattr(pdf_module, "_RESERVATIONS", {})
    signed = tmp_path / "retried.pdf"
    sign_with(kyso_env, sample(tmp_path), signed, "seal-000.00.02.H41", Level.B_T)
    assert verify_with(kyso_env, signed).passed
    assert len(pdf_module._RESERVATIONS) == 1  # the size that worked is used next time


def _docmdp_permission(path: Path) -> int:
    """/P of the DocMDP transform the document's /Perms names (the certification signature)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    with path.open("rb") as stream:
        signature = PdfFileReader(stream).root["/Perms"]["/DocMDP"]
        [reference] = signature["/Reference"]
        assert reference["/TransformMethod"] == "/DocMDP"
        return int(reference["/TransformParams"]["/P"])


@pytest.mark.system
def test_cli_certifies_with_a_visible_stamp_then_seals(server: Server, tmp_path: Path) -> None:
    env = server.env
    keys, images = env.pki / "keys", env.pki / "images"
    certified, sealed = tmp_path / "certified.pdf", tmp_path / "sealed.pdf"
    env.kyso(
        "sign", "pdf", str(sample(tmp_path)), "-o", str(certified),
        "--key", f"p12:{keys / 'person-nguyen-van-an.p12'}", "--level", "B-T", "--certify",
        "--visible", "--page", "1", "--box", "330,350,510,440",
        "--signature-image", str(images / "person-nguyen-van-an.png"),
        "--reason", "Ký ban hành", "--location", "Nghệ An",
    )  # fmt: skip
    assert _docmdp_permission(certified) == 2  # form filling and signing only
    seal = ["sign", "pdf", str(certified), "-o", str(sealed),
            "--key", f"p12:{keys / 'seal-000.00.00.H41.p12'}"]  # fmt: skip
    # A new visible widget after a certification is the "sneaky signature" attack's change:
    # refused before anything is written, rather than a file whose certification fails.
    refused = env.kyso(
        *seal, "--visible", "--style", "seal",
        "--seal-image", str(images / "seal-000.00.00.H41.png"), check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and not sealed.exists(), refused
    assert "certified (DocMDP)" in refused.stderr and "Traceback" not in refused.stderr
    env.kyso(*seal)
    run = env.kyso("verify", str(sealed), "--json", "--trust", str(env.pki / "ca"))
    person, agency = json.loads(run.stdout)["signatures"]
    assert (person["indication"], agency["indication"]) == ("TOTAL_PASSED", "TOTAL_PASSED")
    assert (person["signer"]["common_name"], person["level"]) == ("Nguyễn Văn An", "B-T")
    assert agency["signer"]["common_name"] == "UBND tỉnh Nghệ An"
    assert [c["allowed"] for c in person["changes"]] == [True]
    assert pdfsig(sealed, nss_db(env, tmp_path / "nss")).count("Signature is Valid.") == 2


@pytest.mark.system
def test_page_content_changed_after_certification_is_not_allowed(
    server: Server, tmp_path: Path
) -> None:
    from io import BytesIO

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    env = server.env
    certified = tmp_path / "certified.pdf"
    sign_with(env, sample(tmp_path), certified, "seal-000.00.00.H41", certify=True)
    writer = IncrementalPdfFileWriter(BytesIO(certified.read_bytes()))
    page_ref = writer.root["/Pages"].raw_get("/Kids")[0]
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 500 Td (Sua doi) Tj ET")
    page["/Contents"] = generic.ArrayObject([page.raw_get("/Contents"), writer.add_object(stream)])
    writer.update_container(page)
    changed = tmp_path / "changed.pdf"
    with changed.open("wb") as out:
        writer.write(out)
    [signature] = verify_with(env, changed).signatures
    assert signature.indication is not Indication.TOTAL_PASSED, signature
    assert [c.allowed for c in signature.changes] == [False], signature.changes
    assert env.kyso("verify", str(changed), check=False).returncode == 1


@pytest.mark.system
def test_cli_signs_a_batch_on_two_cores_and_names_what_it_could_not_sign(
    server: Server, tmp_path: Path
) -> None:
    env = server.env
    (tmp_path / "in").mkdir()
    sources = [sample(tmp_path / "in", f"quyet-dinh-{n}.pdf") for n in range(6)]
    broken = tmp_path / "in" / "bien-ban.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really a PDF\n")
    out = tmp_path / "out"
    (out / sources[5].name).mkdir(parents=True)  # an output that cannot be written
    key = f"p12:{env.pki / 'keys' / 'seal-000.00.00.H41.p12'}"
    run = env.kyso(
        "sign", "pdfs", *map(str, [*sources, broken]), "--out-dir", str(out), "--key", key,
        "--workers", "2", check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "5 of 7 signed" in run.stdout and run.stdout.count("not signed:") == 2, run.stdout
    assert "bien-ban.pdf" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert not (out / "bien-ban.pdf").exists() and (out / sources[5].name).is_dir()
    for source in sources[:5]:
        report = verify_with(env, out / source.name)
        assert report.passed and report.signatures[0].signer.common_name == "UBND tỉnh Nghệ An"
    assert "Signature is Valid." in pdfsig(out / sources[0].name, nss_db(env, tmp_path / "nss"))
    # Signing into the sources' own directory would overwrite them: refused, nothing written.
    again = env.kyso("sign", "pdfs", str(sources[0]), "--out-dir", str(tmp_path / "in"),
                     "--key", key, check=False)  # fmt: skip
    assert again.returncode == 2 and "would overwrite it" in again.stderr
