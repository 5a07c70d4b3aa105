"""How agency systems (and admins, auditors) authenticate to the relay.

Two ways, either is enough:

* **API key + request signature.** A credential is a key id (``ak_…``, public) and a secret
  (32 random bytes, shown once). Every request carries ::

      Authorization: Kyso-HMAC-SHA256 Credential=ak_…, Timestamp=UNIX, Nonce=N, Signature=HEX

  where the signature is HMAC-SHA256 with the secret over
  :func:`exchange.wire.canonical_request` (method, path, query, timestamp, nonce, SHA-256 of
  the body; clients sign with :func:`exchange.wire.sign_request`). The timestamp must be
  within five minutes of the relay's clock and a nonce is accepted once per key (kept in the
  database, so a restart does not reopen the window). The secret itself never travels. The
  database keeps its SHA-256 and the secret sealed with AES-256-GCM under a key derived
  (scrypt) from the relay's passphrase.
* **TLS client certificate (mTLS)**, when a TLS terminator in front of Kyso verified it and
  hands it over (WSGI ``SSL_CLIENT_CERT`` or a configured header). The certificate must be one
  the PKI issued to the agency (same DER), unrevoked and within its validity.

Either way, the authenticated agency is the only sender a request may speak for. The
credentials, the principal and the checks themselves are :mod:`exchange.identity`'s; this
module keeps the relay's names for them, the sealing key and the TLS terminator's hand-over.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import Refusal, Unauthenticated
from .identity import Credential, Credentials, Kind, Presented, Principal, Role

# The relay's modules and tools take the principal and its roles from here too.
__all__ = [
    "Authenticator",
    "Credential",
    "Principal",
    "Role",
    "decode_client_certificate",
    "from_networks",
    "installation_id",
    "sealing_key",
]

RELAY_KINDS = frozenset({Kind.HMAC, Kind.CERTIFICATE})


def sealing_key(passphrase: bytes, installation: bytes) -> bytes:
    """The AES key that seals credential secrets (scrypt, once per process)."""
    salt = hashlib.sha256(b"kyso-exchange-credentials\n" + installation).digest()
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase)


def installation_id(root_certificate: x509.Certificate) -> bytes:
    """What makes one Kyso installation's sealing key differ from another's: its root CA."""
    return root_certificate.fingerprint(hashes.SHA256())


class Authenticator(Credentials):
    """The credential table as the relay uses it: HMAC keys and client certificates."""

    def issue(
        self, role: Role, agency: str | None = None, label: str = ""
    ) -> tuple[Credential, str]:
        """A new HMAC key and its secret (shown once, never stored in clear)."""
        return self.issue_key(role, agency, label)

    def authenticate_hmac(
        self,
        authorization: str,
        method: str,
        path: str,
        query: str,
        body: bytes,
        now: dt.datetime | None = None,
    ) -> Principal:
        """Check a signed request; :class:`Unauthenticated` says why it fails."""
        presented = Presented(authorization, None, method, path, query, body)
        return self.authenticate(presented, frozenset({Kind.HMAC}), now)

    def authenticate_certificate(
        self, certificate: bytes | str, now: dt.datetime | None = None
    ) -> Principal:
        """A TLS client certificate (PEM or DER) the PKI issued to an agency."""
        data = certificate.encode() if isinstance(certificate, str) else certificate
        return self.authenticate(Presented(certificate=data), frozenset({Kind.CERTIFICATE}), now)


def decode_client_certificate(value: str) -> bytes:
    """A certificate handed over by a TLS terminator: PEM, URL-escaped PEM or base64 DER."""
    from urllib.parse import unquote

    text = unquote(value.strip()) if "%" in value else value.strip()
    if "-----BEGIN" in text:
        # Some proxies fold the PEM onto one line with spaces for newlines.
        body = text.split("-----")[2] if text.count("-----") >= 4 else ""
        if body and "\n" not in body.strip():
            text = (
                "-----BEGIN CERTIFICATE-----\n"
                + "\n".join(body.split())
                + "\n-----END CERTIFICATE-----\n"
            )
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated(
            "the client certificate header cannot be read", Refusal.BAD_CERTIFICATE
        ) from None


def from_networks(
    address: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether the peer ``address`` (the socket's, never a forwarded header) is in ``networks``."""
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(peer in network for network in networks)
