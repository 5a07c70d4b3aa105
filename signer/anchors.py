"""How a verdict names the CA: the trust-store entries a signer's validated chain runs through.

A policy built from a trust store (:meth:`signer.policy.ValidationPolicy.of_trust`) carries it;
each signature's report then gets ``issuer_path``, the names of the entries from the signer's
issuer up to the root (``("gov-ca-issuing", "gov-root")``). A chain that reaches no trusted
root (INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND) says so in plain words, naming the issuer the
certificate claims. Names are display only: the chain was validated by pyHanko with the same
roots and intermediates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .report import SignatureReport, SubIndication

if TYPE_CHECKING:
    from certs.truststore import TrustSet

UNTRUSTED_CA_EN = "the certificate's CA ({issuer}) is not in Kyso's trust store"
UNTRUSTED_CA_SENTENCE = "The certificate's CA ({issuer}) is not in Kyso's trust store."
UNTRUSTED_CA_VI = "Tổ chức chứng thực ({issuer}) không có trong danh sách tin cậy của Kyso."


def named(
    signatures: Iterable[SignatureReport], anchors: TrustSet | None
) -> tuple[SignatureReport, ...]:
    """``signatures`` with the trust store's names of their CAs (unchanged without one)."""
    if anchors is None:
        return tuple(signatures)
    names = {anchor.fingerprint: anchor.name for anchor in anchors.anchors}
    return tuple(_named(s, names) for s in signatures)


def _named(report: SignatureReport, names: dict[str, str]) -> SignatureReport:
    # The chain is the signer first, its root last (signer.cades.check_signer_certificate).
    path = tuple(names[c.sha256] for c in report.chain[1:] if c.sha256 in names)
    if path:
        return dataclasses.replace(report, issuer_path=path)
    if report.sub_indication is not SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
        return report
    issuer = report.signer.issuer if report.signer else "unknown"
    vi, en = UNTRUSTED_CA_VI.format(issuer=issuer), UNTRUSTED_CA_SENTENCE.format(issuer=issuer)
    return dataclasses.replace(
        report.noted(UNTRUSTED_CA_EN.format(issuer=issuer), first=True),
        explanation_vi=f"{report.explanation_vi} {vi}".strip(),
        explanation_en=f"{report.explanation_en} {en}".strip(),
    )
