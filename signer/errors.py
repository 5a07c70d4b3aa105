"""Errors about the input a user gave (mapped to exit code 2 and HTTP 4xx), not verdicts.

A document that is well-formed but whose signature is bad is *not* an error: it gets a report
with TOTAL_FAILED. These exceptions are for input that cannot be processed at all.
"""


class SignerError(Exception):
    """Base class of every input error in :mod:`signer`."""


class InvalidDocument(SignerError):
    """Not a PDF / XML / CMS file, truncated, encrypted, or otherwise unreadable."""


class DocumentTooLarge(SignerError):
    """The input exceeds the configured size limit."""


class UnsupportedFormat(SignerError):
    """The file type or algorithm is not supported."""


class SigningFailed(SignerError):
    """Signing could not complete (e.g. the TSA did not answer, the field does not exist)."""


class HostileXml(InvalidDocument):
    """XML with DTDs, entities, XInclude, excessive depth or size: refused before parsing."""


class NoSignature(InvalidDocument):
    """A document that should carry a signature carries none (an XML without ds:Signature)."""
