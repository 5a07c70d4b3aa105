"""Kyso's PKI: a local CA with CRL, OCSP and an RFC 3161 time-stamping authority."""

from . import asn1fix as _asn1fix  # noqa: F401 - asn1crypto's indefinite-length check, fixed
