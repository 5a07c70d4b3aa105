"""Signing and validation of documents: PAdES (PDF), XAdES (XML) and CAdES (any file).

Keys are opened through :mod:`certs.keystore` (``p12:`` files or ``pkcs11:`` URIs).
"""
