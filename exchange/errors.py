"""Errors of the exchange relay. They carry no HTTP: kyso/problems.py maps them to problem
details (status code and stable ``code``), the CLI prints them as one line.

An error may carry ``extensions``: extra members of the problem details (for instance the
validation report of a refused package).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ExchangeError(Exception):
    """Base class of every error the relay reports to a caller."""

    def __init__(self, message: str, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.extensions: dict[str, Any] = extensions or {}


class Refusal(StrEnum):
    """Why a request was refused before anyone was identified (the label of the refusal counter)."""

    MISSING = "missing"  # neither an Authorization header nor a client certificate
    MALFORMED = "malformed"  # another scheme, a field missing or out of form
    STALE_TIMESTAMP = "stale-timestamp"  # outside the clock window
    UNKNOWN_KEY = "unknown-key"  # no such credential, revoked, or sealed under another relay
    BAD_SIGNATURE = "bad-signature"  # the HMAC does not verify
    REPLAYED_NONCE = "replayed-nonce"  # the nonce was already used with this key
    BAD_CERTIFICATE = "bad-certificate"  # unreadable, not issued here, expired, not an agency's
    REVOKED_CERTIFICATE = "revoked-certificate"
    UNTRUSTED_PROXY = "untrusted-proxy"  # the client certificate header from a non-proxy address
    TOO_LARGE = "too-large"  # the body is over the limit: refused before it is read
    RATE_LIMITED = "rate-limited"  # too many refusals from the address: answered 429


class Unauthenticated(ExchangeError):
    """No valid agency credentials: missing, malformed, unknown, revoked, stale or replayed.

    ``reason`` says which, for the refusal counter; the message says it to the caller.
    """

    def __init__(self, message: str, reason: Refusal) -> None:
        super().__init__(message)
        self.reason = reason


class TooManyRefusals(ExchangeError):
    """Too many requests from one address failed authentication; retry after ``retry_after``
    seconds (a request that authenticates is not held back)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Forbidden(ExchangeError):
    """The caller is known but may not do this (wrong role, not a party to the message)."""


class SenderMismatch(Forbidden):
    """The package or status names, or is signed by, another agency than the caller."""


class CertificateRefused(Forbidden):
    """The signing certificate is revoked, expired or not registered for the agency."""


class RoutingDenied(Forbidden):
    """The routing rules do not let the sender exchange documents with a recipient."""


class UnknownRecipient(ExchangeError):
    """A recipient code is not in the directory."""


class UnknownMessage(ExchangeError):
    """No such message or inbox item (for this caller)."""


class InvalidPackage(ExchangeError):
    """Not an edXML package or status message the relay can read (schema, XML, parts)."""


class UnsignedDocument(InvalidPackage):
    """The package or status carries no XML signature."""


class SignatureRejected(ExchangeError):
    """A signature of the package, a PDF attachment or a status is not valid (with report)."""


class PackageTooLarge(ExchangeError):
    """The request is larger than the relay accepts."""


class IdempotencyConflict(ExchangeError):
    """The Idempotency-Key was already used for another package."""


class InvalidTransition(ExchangeError):
    """The status does not follow the lifecycle (e.g. 06 before 03, anything after 02)."""


class DuplicateStatus(InvalidTransition):
    """This very status message was already accepted (a replay)."""


class BadRequest(ExchangeError):
    """A malformed request parameter."""


class PushUrlRefused(ExchangeError):
    """The push endpoint's URL is not acceptable, or its host is not on the egress allow-list."""


__all__ = [
    "BadRequest",
    "CertificateRefused",
    "DuplicateStatus",
    "ExchangeError",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidPackage",
    "InvalidTransition",
    "PackageTooLarge",
    "PushUrlRefused",
    "Refusal",
    "RoutingDenied",
    "SenderMismatch",
    "SignatureRejected",
    "TooManyRefusals",
    "Unauthenticated",
    "UnknownMessage",
    "UnknownRecipient",
    "UnsignedDocument",
]
