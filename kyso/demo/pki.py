"""The demo PKI: a CA for the province, a seal for every agency, a few officers' certificates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from certs.agencies import person_name, person_subject, seal_name, seal_subject
from certs.layout import ISSUING_CA
from certs.names import SubjectSpec
from certs.pki import Issued, Pki
from certs.profiles import Profile
from certs.store import CertificateStore
from directory import Directory
from directory.certificates import CertificateRegistry

from .artwork import draw_seal, draw_signature

if TYPE_CHECKING:
    from ..services import Root

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoIdentity:
    """A demo signing identity: who, which key reference, which stamp image."""

    label: str
    issued: Issued
    image: Path


def create_demo_pki(
    directory_path: Path,
    base_url: str,
    passphrase: bytes,
    store: CertificateStore,
    directory: Directory,
    progress: Progress = lambda _: None,
    registry: CertificateRegistry | None = None,
) -> list[DemoIdentity]:
    """Create the PKI and issue one seal per agency and one certificate per officer
    (registered to their agency in ``registry``, if given: the agencies must be loaded)."""
    root = directory.agencies[0]
    progress("root and issuing CA, TSA, OCSP responder, relay")
    pki = Pki.create(
        directory_path,
        base_url,
        passphrase,
        store,
        SubjectSpec(common_name="Kyso", organization=root.name, province=root.province),
        registry,
    )
    issuing = pki.authority(ISSUING_CA, passphrase)  # opened once for every certificate below
    identities = []
    for agency in directory:
        progress(f"seal of {agency.name} ({agency.code})")
        issued = pki.issue(
            Profile.SEAL, seal_subject(agency), passphrase, name=seal_name(agency), issuing=issuing
        )
        image = draw_seal(agency.name, pki.layout.image(seal_name(agency)))
        identities.append(DemoIdentity(agency.name, issued, image))
    for officer in directory.officers:
        agency = directory.get(officer.agency)
        progress(f"personal certificate of {officer.name}")
        subject = person_subject(officer, agency)
        issued = pki.issue(
            Profile.PERSON, subject, passphrase, name=person_name(officer), issuing=issuing
        )
        image = draw_signature(officer.name, pki.layout.image(person_name(officer)))
        identities.append(DemoIdentity(f"{officer.name}, {officer.title}", issued, image))
    return identities


def init_demo_pki(
    root: Root,
    target: Path,
    base_url: str,
    passphrase: bytes,
    agencies: Directory,
    actor: str,
    progress: Progress = lambda _: None,
) -> list[DemoIdentity]:
    """What `kyso pki init` does: the directory loaded, the demo PKI created in ``target`` with
    its certificates registered to their agencies and, for the PKI of the settings, its CA put
    in the trust store like any other (audited as done by ``actor``)."""
    from ..trust_admin import trust_local_pki

    root.agencies.load(agencies)
    identities = create_demo_pki(
        target,
        base_url,
        passphrase,
        root.certificates,
        agencies,
        progress=progress,
        registry=root.agency_certificates,
    )
    if target == root.settings.pki_dir:
        trust_local_pki(root, actor, target)
    return identities
