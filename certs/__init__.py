"""Kyso's PKI: a local CA with CRL, OCSP and an RFC 3161 time-stamping authority."""
