"""directory/certificates.py: certificates registered to agencies, by fingerprint or by issuer and
subject attributes, with a validity period; certs/store.py keyed by issuer and serial; and
`kyso directory certificate add|list|remove`, audited. The certificates come from a foreign CA
made with openssl (tests/foreignca.py), and from Kyso's own CA (registered automatically).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.errors import UnknownCertificate
from certs.layout import PkiLayout
from certs.pki import Pki
from certs.profiles import Profile
from certs.store import AmbiguousSerial, CertificateStore
from certs.truststore import load_one_certificate
from directory import Agency, Directory, UnknownAgency
from directory.certificates import (
    AmbiguousRegistration,
    CertificateRegistry,
    RegistrationError,
    RegistrationExists,
    Role,
    UnknownRegistration,
    certificate_fingerprint,
)
from directory.store import AgencyStore
from kyso.db import upgrade

from .conftest import KysoEnv, free_port
from .exchangetools import audit_log_about, empty_database
from .foreignca import ForeignCA

PROVINCE = "000.00.00.H41"
HEALTH = "000.00.02.H41"
FINANCE = "000.00.03.H41"


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[ForeignCA, ForeignCA]:
    """Two foreign CAs; both number from 1000, so their certificates' serials collide."""
    base = tmp_path_factory.mktemp("foreign")
    first, second = ForeignCA.create(base / "first"), ForeignCA.create(base / "second")
    for ca in (first, second):
        ca.issue("seal", "So Y Te Nghe An")
        ca.issue("officer", "Nguyen Van An")
    return first, second


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated database of each kind Kyso runs on, with three agencies."""
    with empty_database(request.param, tmp_path) as made:
        upgrade(made)
        AgencyStore(made).load(
            Directory(
                (
                    Agency(PROVINCE, "UBND tỉnh Nghệ An", "province"),
                    Agency(HEALTH, "Sở Y tế", "department", PROVINCE),
                    Agency(FINANCE, "Sở Tài chính", "department", PROVINCE),
                )
            )
        )
        yield made


def test_a_foreign_seal_registered_to_an_agency_is_found(
    cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine
) -> None:
    ca, other = cas
    registry = CertificateRegistry(engine)
    seal = ca.certificate("seal")
    registration = registry.register(HEALTH, seal, Role.SEAL)
    assert (registration.fingerprint, registration.serial) == (
        certificate_fingerprint(seal),
        format(seal.serial_number, "X"),
    )
    assert registration.issuer == seal.issuer.rfc4514_string()
    assert registry.agency_of(seal) == registration
    assert registry.is_registered_to(seal, HEALTH, role=Role.SEAL)
    # What the relay refuses as sender-mismatch: the seal is another agency's.
    assert not registry.is_registered_to(seal, FINANCE)
    assert not registry.is_registered_to(seal, HEALTH, role=Role.OFFICER)
    # The other CA's certificate with the same serial and subject is nobody's.
    twin = other.certificate("seal")
    assert twin.serial_number == seal.serial_number and twin.subject == seal.subject
    assert registry.agency_of(twin) is None
    assert registry.agency_of(ca.certificate("officer")) is None


def test_a_registration_counts_only_within_its_validity(
    cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine
) -> None:
    registry = CertificateRegistry(engine)
    seal = cas[0].certificate("seal")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    end = start + dt.timedelta(days=30)
    registry.register(HEALTH, seal, valid_from=start, valid_until=end)
    assert registry.agency_of(seal) is None  # not yet
    assert registry.agency_of(seal, start + dt.timedelta(days=1)).agency == HEALTH  # type: ignore[union-attr]
    assert registry.agency_of(seal, end + dt.timedelta(seconds=1)) is None
    # By default, as long as the certificate itself is valid.
    officer = cas[0].certificate("officer")
    default = registry.register(HEALTH, officer, Role.OFFICER)
    assert (default.valid_from, default.valid_until) == (
        officer.not_valid_before_utc,
        officer.not_valid_after_utc,
    )
    with pytest.raises(RegistrationError, match="end before it begins"):
        registry.register(FINANCE, cas[1].certificate("seal"), valid_from=end, valid_until=start)


def test_by_issuer_and_subject_attributes_a_renewed_certificate_matches(
    cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine
) -> None:
    ca, other = cas
    registry = CertificateRegistry(engine)
    registration = registry.register(HEALTH, ca.certificate("seal"), by_subject=("O", "CN"))
    assert registration.fingerprint is None
    assert dict(registration.subject_match) == {
        "2.5.4.10": "So Y Te Nghe An",
        "2.5.4.3": "So Y Te Nghe An",
    }
    renewed = ca.issue("seal-2027", "So Y Te Nghe An")
    assert registry.agency_of(renewed) == registration
    assert registry.agency_of(ca.certificate("officer")) is None  # another CN
    # The other CA has the same name (CN=Foreign Issuing CA…) but not the same key.
    assert other.certificate("seal").issuer == renewed.issuer
    assert registry.agency_of(other.certificate("seal")) is None
    # A fingerprint registration is more precise, and wins.
    exact = registry.register(FINANCE, renewed)
    assert registry.agency_of(renewed) == exact
    with pytest.raises(RegistrationError, match="no T attribute"):
        registry.register(HEALTH, renewed, by_subject=("T",))
    with pytest.raises(RegistrationError, match="unknown subject attribute"):
        registry.register(HEALTH, renewed, by_subject=("NOPE",))


def test_refusals_and_ambiguity(cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine) -> None:
    registry = CertificateRegistry(engine)
    seal = cas[0].certificate("seal")
    first = registry.register(HEALTH, seal)
    with pytest.raises(RegistrationExists, match=HEALTH):
        registry.register(FINANCE, seal)
    with pytest.raises(UnknownAgency):
        registry.register("999.99.99.Z99", cas[1].certificate("seal"))
    with pytest.raises(RegistrationError, match="CA's certificate"):
        registry.register(HEALTH, cas[0].issuing)
    registry.register(HEALTH, seal, by_subject=("CN",))
    registry.register(FINANCE, seal, by_subject=("O",))
    assert registry.agency_of(seal) == first  # the fingerprint decides
    registry.remove(first.id)
    with pytest.raises(AmbiguousRegistration, match=f"{HEALTH}, {FINANCE}"):
        registry.agency_of(seal)
    assert not registry.is_registered_to(seal, HEALTH)
    with pytest.raises(UnknownRegistration):
        registry.remove(first.id)
    assert [r.agency for r in registry.all()] == [HEALTH, FINANCE]
    assert [r.agency for r in registry.all(FINANCE)] == [FINANCE]


def _same_serial_other_ca(certificate: x509.Certificate) -> x509.Certificate:
    """A certificate with ``certificate``'s serial, issued under another CA's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kyso Issuing CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(certificate.serial_number)
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )


def test_the_cas_records_are_keyed_by_issuer_and_serial(
    cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine
) -> None:
    store = CertificateStore(engine)
    first = cas[0].certificate("seal")
    second = _same_serial_other_ca(first)
    store.add(first, "issuing", Profile.SEAL.value)
    store.add(second, "issuing", Profile.SEAL.value)  # same serial, another CA: no collision
    serial = first.serial_number
    assert store.find(serial, first.issuer).fingerprint == certificate_fingerprint(first)  # type: ignore[union-attr]
    assert store.find(serial, second.issuer).fingerprint == certificate_fingerprint(second)  # type: ignore[union-attr]
    assert store.find_certificate(second).issuer == "CN=Kyso Issuing CA"  # type: ignore[union-attr]
    assert store.find_certificate(cas[1].certificate("seal")) is None
    with pytest.raises(AmbiguousSerial):
        store.find(serial)  # a caller that names no issuer is told, not given either
    revoked = store.revoke(serial, x509.ReasonFlags.superseded, issuer=second.issuer)
    assert revoked.revoked and not store.get(serial, first.issuer).revoked
    assert [r.fingerprint for r in store.revoked("issuing", second.issuer)] == [
        certificate_fingerprint(second)
    ]
    assert store.revoked("issuing", first.issuer) == []


def test_kyso_directory_certificate_add_list_remove_is_audited(
    cas: tuple[ForeignCA, ForeignCA], tmp_path: Path
) -> None:
    env = KysoEnv(tmp_path / "data", free_port())
    env.kyso("directory", "load")
    seal, officer = (str(cas[0].directory / f"{n}.pem") for n in ("seal", "officer"))
    valid_from = cas[0].certificate("seal").not_valid_before_utc
    valid_until = cas[0].certificate("seal").not_valid_after_utc
    added = env.kyso("directory", "certificate", "add", HEALTH, seal)
    assert added.stdout.startswith("#1:") and f"registered to {HEALTH} as seal" in added.stdout
    env.kyso(
        "directory", "certificate", "add", PROVINCE, officer, "--role", "officer",
        "--by-subject", "CN", "--from", "2026-01-01", "--until", "2026-12-31",
    )  # fmt: skip
    rows = [
        line.split("\t")
        for line in env.kyso("directory", "certificate", "list").stdout.splitlines()
    ]
    assert rows[0][:3] == ["id", "agency", "role"]
    assert [(r[0], r[1], r[2], r[7], r[8], r[10]) for r in rows[1:]] == [
        ("2", PROVINCE, "officer", "2026-01-01", "2026-12-31", "admin"),
        ("1", HEALTH, "seal", f"{valid_from:%Y-%m-%d}", f"{valid_until:%Y-%m-%d}", "admin"),
    ]
    assert rows[1][6] == "subject 2.5.4.3=Nguyen Van An"
    only = env.kyso("directory", "certificate", "list", HEALTH).stdout.splitlines()[1:]
    assert [line.split("\t")[0] for line in only] == ["1"]

    again = env.kyso("directory", "certificate", "add", FINANCE, seal, check=False)
    assert again.returncode == 2 and "registered already" in again.stderr
    unknown = env.kyso("directory", "certificate", "add", "999.99.99.Z99", seal, check=False)
    assert unknown.returncode == 2 and "unknown agency" in unknown.stderr
    env.kyso("directory", "certificate", "remove", "1")
    gone = env.kyso("directory", "certificate", "remove", "1", check=False)
    assert gone.returncode == 2 and "no certificate registration #1" in gone.stderr

    events = audit_log_about(env.data, "agency-certificate:")
    assert [(e["event"], e["subject"], e["data"]["change"]) for e in events] == [  # type: ignore[index]
        ("admin", "agency-certificate:1", "agency-certificate-added"),
        ("admin", "agency-certificate:2", "agency-certificate-added"),
        ("admin", "agency-certificate:1", "agency-certificate-removed"),
    ]
    data = events[0]["data"]
    assert data["fingerprint"] == certificate_fingerprint(cas[0].certificate("seal"))  # type: ignore[index]
    assert (data["agency"], data["role"]) == (HEALTH, "seal")  # type: ignore[index]
    assert str(events[0]["actor"]).startswith("cli:")


def _listed(env: KysoEnv, code: str) -> list[list[str]]:
    """`kyso directory certificate list CODE`, one list of columns a row (header left out)."""
    lines = env.kyso("directory", "certificate", "list", code).stdout.splitlines()[1:]
    return [line.split("\t") for line in lines]


def test_kysos_seals_and_officers_are_registered_when_issued(kyso_env: KysoEnv) -> None:
    rows = _listed(kyso_env, PROVINCE)
    assert {(r[1], r[2], r[10]) for r in rows} >= {(PROVINCE, "seal", "kyso-ca")}
    assert all(r[9] == "valid" for r in rows)
    assert any(r[2] == "officer" for r in rows)

    agency = "000.00.21.H41"
    kyso_env.kyso("pki", "issue", "person", "--agency", agency, "--name", "Trần Văn Bình")
    issued = load_one_certificate(kyso_env.cert("person-tran-van-binh"))
    officers = [(r[6], r[10]) for r in _listed(kyso_env, agency) if r[2] == "officer"]
    assert (certificate_fingerprint(issued)[:16], "kyso-ca") in officers


def test_kysos_pki_revokes_and_reads_only_its_own_certificates(
    kyso_env: KysoEnv, cas: tuple[ForeignCA, ForeignCA], engine: sa.Engine
) -> None:
    """A foreign certificate with the serial of one of Kyso's is not Kyso's to revoke, and its
    UID names no agency."""
    store = CertificateStore(engine)
    pki = Pki(PkiLayout(kyso_env.pki), store)
    seal = load_one_certificate(kyso_env.cert(f"seal-{PROVINCE}"))
    impostor = _same_serial_other_ca(seal)
    store.add(impostor, "issuing", Profile.SEAL.value)
    with pytest.raises(UnknownCertificate):
        pki.record(seal.serial_number)
    store.add(seal, "issuing", Profile.SEAL.value)
    assert pki.record(seal.serial_number).fingerprint == certificate_fingerprint(seal)
    assert pki.agency_code_of(seal) == PROVINCE
    assert pki.agency_code_of(impostor) is None
    assert pki.agency_code_of(cas[0].certificate("seal")) is None
