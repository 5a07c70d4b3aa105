"""Faster equality and hashing of asn1crypto X.509 names, with exactly asn1crypto's meaning.

``asn1crypto.x509.Name.__eq__`` compares names as RFC 5280 7.1 asks: every attribute value
through LDAP string preparation (RFC 4518), recomputed for each pair compared. pyHanko and
certvalidator compare the same few CA and signer names dozens of times per signature (issuer
and serial matching, path building, CRL issuers): more than a third of the time of verifying
a one-page signed PDF. Here the prepared form of a name is computed once per distinct DER
encoding and kept (bounded), and two names are equal when their prepared forms are: the same
RDN count, and per RDN the same attribute count and the same type → prepared-value map,
which is the test asn1crypto's ``RDNSequence`` and ``RelativeDistinguishedName`` apply.

certvalidator also keys its certificate registry and CRL lookups by ``Name.hashable``, the
same prepared strings joined: it is kept per DER encoding too.
"""

from __future__ import annotations

import functools
from typing import Any

from asn1crypto import x509 as asn1_x509

PreparedName = tuple[tuple[int, tuple[tuple[str, str], ...]], ...]


@functools.lru_cache(maxsize=8192)
def prepared(der: bytes) -> PreparedName:
    """The comparable form of the DER-encoded ``RDNSequence`` ``der``."""
    rdns = asn1_x509.RDNSequence.load(der)
    return tuple((len(rdn), tuple(sorted(rdn._get_values(rdn).items()))) for rdn in rdns)


def names_equal(name: asn1_x509.Name, other: Any) -> bool:
    """``name == other`` as asn1crypto defines it."""
    if not isinstance(other, asn1_x509.Name):
        return False
    # The RDNSequence inside: a name in a GeneralName carries an explicit [4] tag around it.
    mine, theirs = name.chosen.dump(), other.chosen.dump()
    return mine == theirs or prepared(mine) == prepared(theirs)


# The originals, for the tests' comparison and the benchmarks' baselines.
asn1crypto_names_equal = asn1_x509.Name.__dict__["__eq__"]
asn1crypto_hashable: property = asn1_x509.RDNSequence.__dict__["hashable"]


@functools.lru_cache(maxsize=8192)
def _hashable(der: bytes) -> str:
    value: str = asn1crypto_hashable.fget(asn1_x509.RDNSequence.load(der))  # type: ignore[misc]
    return value


def rdn_sequence_hashable(sequence: asn1_x509.RDNSequence) -> str:
    """``sequence.hashable`` as asn1crypto computes it, once per distinct DER encoding."""
    return _hashable(sequence.dump())


fast_hashable = property(rdn_sequence_hashable)


def _install() -> None:
    if asn1_x509.Name.__eq__ is not names_equal:
        asn1_x509.Name.__eq__ = names_equal
    asn1_x509.RDNSequence.hashable = fast_hashable


_install()
