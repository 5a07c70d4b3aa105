"""What a verifier accepts: trust anchors, validation time, online or offline revocation."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.api import FetcherBackend
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from certs.keystore import shared_asn1

from .checkcache import CertificateCheckCache
from .localfetch import LocalAnswers, local_fetchers
from .revcache import RevocationCache

if TYPE_CHECKING:  # the agency's client verifies too, and must not load the directory's tables
    from certs.truststore import TrustSet

# Revocation information is required for signers and intermediate CAs; a missing answer makes
# the verdict INDETERMINATE, never a silent pass.
REQUIRE_REVOCATION = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    )
)

# Embedded evidence judged as of the signature timestamp's time (a B-LT/B-LTA signature's
# DSS, see signer.pdf_verify): an answer produced after that time still speaks for it.
# pyHanko's ValidationContext ignores its retroactive_revinfo argument when given a
# revinfo_policy, so the switch lives here.
REQUIRE_REVOCATION_RETROACTIVE = dataclasses.replace(REQUIRE_REVOCATION, retroactive_revinfo=True)

# With a kept verdict (signer.checkcache), revocation was checked when the verdict was made.
KEPT_REVOCATION = CertRevTrustPolicy(NO_REVOCATION)

# RSA keys below 2048 bits and SHA-1 are refused (CRYPTO_CONSTRAINTS_FAILURE).
WEAK_HASHES = frozenset({"md5", "sha1"})


@dataclass(frozen=True)
class ValidationPolicy:
    """Inputs of validation that do not come from the document itself."""

    trust_roots: tuple[x509.Certificate, ...]
    offline: bool = False
    at: dt.datetime | None = None  # validate as of this moment (None: now)
    extra_certs: tuple[x509.Certificate, ...] = field(default=())
    # Online answers reused across validations (None: every validation fetches afresh).
    cache: RevocationCache | None = field(default=None, compare=False)
    # Passing signer-certificate verdicts reused while validating as of now (see checkcache).
    checks: CertificateCheckCache | None = field(default=None, compare=False)
    # OCSP/CRL URLs this process answers itself (a server validating under its own PKI).
    local: LocalAnswers | None = field(default=None, compare=False)
    # Where OCSP and CRL requests go (None: pyHanko's own HTTP client). Kyso's verifiers pass
    # certs.revocation_certvalidator.KysoFetcherBackend: the egress policy, bounds and cache.
    fetcher_backend: FetcherBackend | None = field(default=None, compare=False)
    # The trust store the roots came from: how a verdict names the CA (see :meth:`of_trust`).
    anchors: TrustSet | None = field(default=None, compare=False)
    # Revocation answers produced after ``at`` count for it (ignore their thisUpdate): only
    # for a long-term signature's embedded evidence, judged as of its timestamp's time.
    retroactive_revinfo: bool = False

    @classmethod
    def of_trust(cls, trust: TrustSet, **options: Any) -> ValidationPolicy:
        """The policy trusting ``trust``'s roots, offering its intermediates for path
        building, and naming its entries in verdicts; ``options``: the other fields."""
        return cls(trust.roots, extra_certs=trust.intermediates, anchors=trust, **options)

    # Shared by every validation under this policy, from any thread: parsed in full.
    @cached_property
    def _asn1_roots(self) -> tuple[asn1_x509.Certificate, ...]:
        return tuple(shared_asn1(c) for c in self.trust_roots)

    @cached_property
    def _asn1_extra(self) -> tuple[asn1_x509.Certificate, ...]:
        return tuple(shared_asn1(c) for c in self.extra_certs)

    @property
    def moment(self) -> dt.datetime:
        return self.at or dt.datetime.now(dt.UTC)

    def validation_context(
        self,
        crls: tuple[asn1_crl.CertificateList, ...] = (),
        ocsps: tuple[asn1_ocsp.OCSPResponse, ...] = (),
    ) -> ValidationContext:
        """A fresh pyHanko/certvalidator context (contexts cache state: one per validation)."""
        # requests, not aiohttp: no event-loop-bound sessions left open between calls.
        backend = self.fetcher_backend or RequestsFetcherBackend(per_request_timeout=10)
        fetchers = backend.get_fetchers()
        if self.local is not None:
            fetchers = local_fetchers(fetchers, self.local)
        if self.cache is not None:
            fetchers = self.cache.fetchers(fetchers)
        return ValidationContext(
            trust_roots=list(self._asn1_roots),
            other_certs=list(self._asn1_extra),
            moment=self.at,
            allow_fetching=not self.offline,
            revinfo_policy=(
                REQUIRE_REVOCATION_RETROACTIVE if self.retroactive_revinfo else REQUIRE_REVOCATION
            ),
            crls=list(crls),
            ocsps=list(ocsps),
            weak_hash_algos=set(WEAK_HASHES),
            fetchers=fetchers,
        )

    def kept_verdict_context(self, signer: asn1_x509.Certificate) -> ValidationContext:
        """A context for a ``signer`` whose passing verdict is kept (see
        :mod:`signer.checkcache`): the signer's certificate is its only trust anchor, since
        its path, validity, key usage and revocation status were validated when the verdict
        was made. pyHanko then checks the signature's integrity and value and the document's
        revisions, and nothing is fetched."""
        return ValidationContext(
            trust_roots=[signer],
            moment=self.at,
            allow_fetching=False,
            revinfo_policy=KEPT_REVOCATION,
            weak_hash_algos=set(WEAK_HASHES),
        )


SELF_SIGNED_UNTRUSTED = "the signer's certificate is self-signed and not a trusted root"


def self_signed_untrusted(certificate: asn1_x509.Certificate, context: ValidationContext) -> bool:
    """A self-issued signer certificate that is no trust root of ``context``.

    certvalidator reports it as an invalid certificate (CHAIN_CONSTRAINTS_FAILURE); for ETSI
    EN 319 102-1 it is a missing chain (NO_CERTIFICATE_CHAIN_FOUND), for PDF and CAdES alike.
    """
    return bool(certificate.self_issued) and not context.path_builder.trust_manager.is_root(
        certificate
    )
