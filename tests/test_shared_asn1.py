"""asn1crypto values that threads share are parsed in full before they are shared.

asn1crypto fills a value's list of children lazily, one child at a time; a thread reading a
field while another parses it sees a partial list (the relay benchmark hit "No field numbered
1 is present in this SignedDigestAlgorithm" once with two workers of four threads).
"""

from __future__ import annotations

from typing import Any

from asn1crypto import core
from cryptography import x509

from certs.keyfile import load_pkcs12
from certs.keystore import shared_asn1, signer_from_bundle, to_asn1
from certs.layout import PkiLayout
from exchange.trust import Trust

from .conftest import PASSPHRASE, KysoEnv


def unparsed(value: Any, path: str = "") -> list[str]:
    """Where inside ``value`` a constructed field has not been parsed yet."""
    if isinstance(value, (core.Sequence, core.SequenceOf)):
        if value.children is None:
            return [path or "/"]
        found = []
        for index, child in enumerate(value.children):
            if isinstance(child, tuple):  # still (class, method, tag, header, contents, trailer)
                found.append(f"{path}/{index}")
            else:
                found += unparsed(child, f"{path}/{index}")
        return found
    if isinstance(value, core.Choice):
        return [path or "/"] if value._parsed is None else unparsed(value._parsed, path)
    return []


def test_a_freshly_loaded_certificate_is_lazy_and_a_shared_one_is_not(kyso_env: KysoEnv) -> None:
    certificate = x509.load_pem_x509_certificate(kyso_env.root.read_bytes())
    assert unparsed(to_asn1(certificate))  # what the test looks for exists
    assert unparsed(shared_asn1(certificate)) == []


def test_the_relays_shared_roots_crls_and_signers_are_parsed_in_full(kyso_env: KysoEnv) -> None:
    trust = Trust.from_layout(PkiLayout(kyso_env.pki))
    policy = trust.policy()
    shared = [*policy._asn1_roots, *policy._asn1_extra, *trust.crls()]
    assert len(shared) >= 3
    assert [where for value in shared for where in unparsed(value)] == []
    bundle = load_pkcs12(kyso_env.pki / "keys" / "seal-000.00.00.H41.p12", PASSPHRASE.encode())
    assert unparsed(signer_from_bundle(bundle).signing_cert) == []
