"""Errors of the service layer (accounts, tokens, web and API requests).

Like the domain errors of :mod:`signer` and :mod:`certs`, they carry no HTTP: the one mapping to
status codes and problem-detail codes is :mod:`kyso.problems`; the CLI prints them as one line.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class of every error a user of the service is told about."""


class InvalidRequest(ServiceError):
    """A parameter is missing, malformed or out of range."""


class AuthenticationRequired(ServiceError):
    """No credentials were given for an operation that needs them."""


class InvalidCredentials(AuthenticationRequired):
    """Wrong username or password (never says which)."""


class InvalidToken(AuthenticationRequired):
    """The API token is unknown, malformed or revoked."""


class PermissionDenied(ServiceError):
    """The caller is known but may not do this."""


class KeyNotAllowed(PermissionDenied):
    """The key is not one the caller may sign with (another agency's, revoked, not granted)."""


class PersonalKeyNotAllowed(KeyNotAllowed):
    """A personal key asked of a caller that may not make personal signatures (an agency
    system's token): an officer's signature needs the officer in person."""


class CsrfFailed(PermissionDenied):
    """A form was posted without the session's CSRF token."""


class NotFound(ServiceError):
    """No such account, token, upload or report (for this caller)."""


class Conflict(ServiceError):
    """The thing already exists (e.g. a username)."""


class KeyUnavailable(ServiceError):
    """A granted key cannot be opened on the server (key file, passphrase, HSM): the server's
    fault, told to the caller without where or how the key is kept."""


class RateLimited(ServiceError):
    """Too many attempts or requests; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
