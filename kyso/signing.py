"""Signing and verifying on behalf of people (web) and agency systems (API tokens).

The one rule that matters: a caller signs only with keys granted to it, and only with keys
whose certificate names the caller's own agency (the ``UID`` attribute). Both are checked on
every signature, after the key is opened, so a tampered grant cannot sign for another agency.
An agency system's API token signs with its agency's seals only, never with an officer's
personal key (its certificate's profile in the CA's records decides, checked the same way).

Keys are opened once per key reference and kept (:class:`KeyRing`); the trust anchors and the
TSA address are read once when the service is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from cryptography import x509
from pyhanko.sign.timestamps import TimeStamper

from certs.errors import PKIError
from certs.keystore import SigningKey, open_key
from certs.pkcs11uri import DEFAULT_ACCESS, Pkcs11Access
from certs.revocation_certvalidator import KysoFetcherBackend
from certs.revocation_fetch import RevocationFetcher
from certs.store import CertificateRecord, CertificateStore
from certs.truststore import TrustSet
from signer.errors import InvalidDocument, SigningFailed, UnsupportedFormat
from signer.levels import BASIC_LEVELS, Level
from signer.localfetch import LocalAnswers
from signer.pdf import PdfSignOptions, PdfSignResult
from signer.pdf_input import looks_like_pdf
from signer.policy import ValidationPolicy
from signer.report import CertificateInfo, Report

from .errors import InvalidRequest, KeyNotAllowed, KeyUnavailable
from .identities import Identities, Identity, key_name
from .tokens import TOKEN_KEY_KINDS, personal_key_refused

log = logging.getLogger(__name__)

Rect = tuple[float, float, float, float]
STYLES = ("person", "seal", "attachment", "copy")
XML_CMS_LEVELS = BASIC_LEVELS  # what XAdES and CAdES signing offer


class Principal(Protocol):
    """Who asks to sign: an :class:`exchange.identity.Principal` (an API token's, or a signed-in
    account's), or a token as stored (:class:`kyso.tokens.ApiToken`)."""

    @property
    def agency_code(self) -> str | None: ...

    @property
    def key_refs(self) -> tuple[str, ...]: ...

    @property
    def in_person(self) -> bool:
        """A person signed in: only then may a personal key be used."""
        ...


class KeyRing:
    """Opened signing keys, one per key reference, opened on first use and kept.

    PKCS#11 sessions are not shared between threads: signing with such a key holds its lock.
    ``pkcs11`` names the library and PIN of a ``pkcs11:`` key whose URI does not.
    """

    def __init__(self, passphrase: bytes | None, pkcs11: Pkcs11Access = DEFAULT_ACCESS) -> None:
        self._passphrase = passphrase
        self._pkcs11 = pkcs11
        self._keys: dict[str, SigningKey] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def open(self, key_ref: str) -> SigningKey:
        """The opened key; :class:`KeyUnavailable` if it cannot be opened. Why it cannot (a
        file path, an HSM module, a PIN file) goes to the server log, never to the caller."""
        with self._lock:
            key = self._keys.get(key_ref)
            if key is None:
                secret = self._passphrase if key_ref.startswith("p12:") else None
                try:
                    key = open_key(key_ref, secret, pkcs11=self._pkcs11)
                except PKIError as exc:
                    log.error("signing key %s cannot be opened: %s", key_name(key_ref), exc)
                    raise KeyUnavailable(
                        f"key {key_name(key_ref)} cannot be opened on this server; "
                        "its administrator will find why in the server log"
                    ) from None
                self._keys[key_ref] = key
                self._locks[key_ref] = threading.Lock()
            return key

    @contextlib.contextmanager
    def using(self, key_ref: str) -> Iterator[SigningKey]:
        key = self.open(key_ref)
        if key_ref.startswith("pkcs11:"):
            with self._locks[key_ref]:
                yield key
        else:
            yield key

    def close(self) -> None:
        with self._lock:
            for key in self._keys.values():
                key.close()
            self._keys.clear()


@dataclass(frozen=True)
class PdfRequest:
    """What kind of PDF signature to make (the options of ``kyso sign pdf``)."""

    level: Level = Level.B_B
    visible: bool = False
    style: str | None = None  # person / seal / attachment / copy; default: the key's kind
    page: int = 1  # 1-based
    box: Rect | None = None  # PDF points, origin bottom left
    document_code: str | None = None
    copy_type: str | None = None
    text_block: bool = False
    certify: bool = False
    reason: str | None = None
    location: str | None = None
    field_name: str | None = None


@dataclass(frozen=True)
class SignedPdf:
    """A PDF signed: pyHanko's result and the short name of the key used."""

    result: PdfSignResult
    key_name: str


@dataclass(frozen=True)
class Signed:
    """A signature made for XML or CMS: the bytes and who signed."""

    data: bytes
    signer: CertificateInfo
    key_name: str
    level: Level
    signing_time: dt.datetime


def parse_box(text: str | None) -> Rect | None:
    """``x1,y1,x2,y2`` in PDF points, as the CLI's ``--box``."""
    if text is None or not text.strip():
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidRequest("box: expected x1,y1,x2,y2 in PDF points") from None
    values = (x1, y1, x2, y2)
    if any(v != v or abs(v) > 14400 for v in values):  # NaN or beyond the largest PDF page
        raise InvalidRequest("box: coordinates must be numbers within ±14400 points")
    if x2 <= x1 or y2 <= y1:
        raise InvalidRequest("box: x2 must exceed x1 and y2 must exceed y1")
    return values


def parse_level(text: str | None, allowed: tuple[Level, ...] = tuple(Level)) -> Level:
    if text is None or text == "":
        return Level.B_B
    try:
        level = Level(text)
    except ValueError:
        level = None
    if level is None or level not in allowed:
        raise InvalidRequest(f"level must be one of {', '.join(a.value for a in allowed)}")
    return level


class SigningService:
    """Everything the web pages and the API do with keys and documents."""

    def __init__(
        self,
        identities: Identities,
        keyring: KeyRing,
        trust_roots: tuple[x509.Certificate, ...],
        timestamper: TimeStamper | None,
        local_answers: LocalAnswers | None = None,
        stamp_font: Path | None = None,
        trust: Callable[[], TrustSet] | None = None,
        revocation: RevocationFetcher | None = None,
    ) -> None:
        """``stamp_font``: the font of visible signatures' text (None: Noto Serif); ``trust``:
        the trust store, which replaces ``trust_roots`` when given; ``revocation``: online
        OCSP and CRLs for the certificates of other CAs than Kyso's."""
        self.identities = identities
        self.keyring = keyring
        self.trust_roots = trust_roots
        # The server's own TSA, OCSP responder and CRLs are called in process, never over HTTP
        # to itself: a request thread must not wait for another request thread.
        self.timestamper = timestamper
        self.local_answers = local_answers
        self.trust = trust
        self.revocation = revocation
        self.stamp_font = stamp_font

    @property
    def store(self) -> CertificateStore:
        return self.identities.store

    # -- who may use which key -----------------------------------------------------------------

    def _granted(self, principal: Principal) -> list[Identity]:
        """The identities granted to ``principal`` that are its agency's, of any kind."""
        found = []
        for ref in principal.key_refs:
            identity = self.identities.find(ref)
            if identity is not None and identity.agency_code == principal.agency_code:
                found.append(identity)
        return found

    def allowed(self, principal: Principal) -> list[Identity]:
        """The identities ``principal`` may sign with: its grants that are its agency's and of
        a kind it may use (a token: seals only, whatever an older grant lists)."""
        return [i for i in self._granted(principal) if _kind_allowed(principal, i.kind)]

    def choose_key(
        self, principal: Principal, text: str | None, kind: str | None = None
    ) -> Identity:
        """The granted identity named by ``text`` (reference, short name or serial).

        Without ``text``: the only granted key, the first of ``kind``, or the agency's seal.
        """
        granted = self._granted(principal)
        if text:
            wanted = text.strip()
            for identity in granted:
                if wanted in (identity.key_ref, identity.name) or wanted.upper() == identity.serial:
                    _check_kind(principal, identity.name, identity.kind, identity.common_name)
                    return identity
            raise KeyNotAllowed(f"key {wanted!r} is not one this caller may sign with")
        allowed = [i for i in granted if _kind_allowed(principal, i.kind)]
        if len(allowed) == 1:
            return allowed[0]
        candidates = [i for i in allowed if i.kind == (kind or "seal")]
        if candidates and (kind is not None or len(candidates) == 1):
            return candidates[0]
        if not allowed and granted:  # an older token holding nothing but a personal key
            _check_kind(principal, granted[0].name, granted[0].kind, granted[0].common_name)
        if not allowed:
            raise KeyNotAllowed("this caller may not sign with any key")
        raise InvalidRequest("several keys are granted: choose one with 'key'")

    def _open(
        self, principal: Principal, identity: Identity
    ) -> contextlib.AbstractContextManager[SigningKey]:
        if identity.key_ref not in principal.key_refs:
            raise KeyNotAllowed(f"key {identity.name} is not granted to this caller")
        key = self.keyring.open(identity.key_ref)
        info = CertificateInfo.of(key.certificate)
        if principal.agency_code is None or info.agency_code != principal.agency_code:
            raise KeyNotAllowed(
                f"key {identity.name} is agency {info.agency_code}'s, not {principal.agency_code}'s"
            )
        record = self.store.find_certificate(key.certificate)
        _check_recorded_kind(principal, identity, record)
        if record is not None and record.revoked:
            raise KeyNotAllowed(f"the certificate of key {identity.name} is revoked")
        now = dt.datetime.now(dt.UTC)
        if not info.not_before <= now <= info.not_after:
            raise KeyNotAllowed(f"the certificate of key {identity.name} is not valid now")
        return self.keyring.using(identity.key_ref)

    def check_key(self, principal: Principal, identity: Identity) -> None:
        """Every check made before signing, without signing (for tests and admin pages)."""
        with self._open(principal, identity):
            pass

    # -- signing ---------------------------------------------------------------------------

    def sign_pdf(
        self,
        principal: Principal,
        key: str | None,
        source: Path,
        output: Path,
        request: PdfRequest,
    ) -> SignedPdf:
        """PAdES-sign ``source`` into ``output`` with a key ``principal`` may use."""
        from signer.pdf import sign

        _check_head(source, "PDF")
        style = request.style
        if style is not None and style not in STYLES:
            raise InvalidRequest(f"style must be one of {', '.join(STYLES)}")
        wanted_kind = style if style in ("person", "seal") else None
        identity = self.choose_key(principal, key, wanted_kind)
        if request.visible and style is None:
            style = identity.kind
        if request.visible and style in ("person", "seal") and style != identity.kind:
            raise InvalidRequest(f"a {style} stamp needs a {style} key, not {identity.name}")
        if request.page < 1:
            raise InvalidRequest("page numbers start at 1")
        options = PdfSignOptions(
            level=request.level,
            field_name=request.field_name or None,
            reason=request.reason or None,
            location=request.location or None,
            certify=request.certify,
            timestamper=self.timestamper,
            policy=self._policy() if request.level.long_term else None,
        )
        with self._open(principal, identity) as signing_key:
            if request.visible:
                options = self._with_stamp(options, source, identity, signing_key, request, style)
            return SignedPdf(sign(source, output, signing_key, options), identity.name)

    def _with_stamp(
        self,
        options: PdfSignOptions,
        source: Path,
        identity: Identity,
        key: SigningKey,
        request: PdfRequest,
        style: str | None,
    ) -> PdfSignOptions:
        from signer.stamps import StampKind, StampRequest, build_appearance_for_file

        info = CertificateInfo.of(key.certificate)
        stamp = StampRequest(
            kind=StampKind(style or identity.kind),
            page=request.page - 1,
            box=request.box,
            signature_image=identity.image if identity.kind == "person" else None,
            seal_image=identity.image if identity.kind == "seal" else None,
            document_code=request.document_code,
            copy_type=request.copy_type,
            agency_name=info.organization,
            signer_name=info.common_name,
            text_block=request.text_block,
            font=self.stamp_font,
        )
        appearance, params = build_appearance_for_file(stamp, source, dt.datetime.now(dt.UTC))
        return dataclasses.replace(options, appearance=appearance, stamp_params=params)

    def sign_xml(self, principal: Principal, key: str | None, data: bytes, level: Level) -> Signed:
        """Enveloped XAdES (B-B or B-T) over an XML document."""
        from signer import xml_signing

        if not data.strip():
            raise InvalidDocument("the XML document is empty")
        if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            raise UnsupportedFormat("not an XML document")
        identity = self.choose_key(principal, key)
        timestamper = self._timestamper(level)
        with self._open(principal, identity) as signing_key:
            signed = xml_signing.sign_xml(data, signing_key, level=level, timestamper=timestamper)
            return self._signed(signed, signing_key, identity, level)

    def sign_cms(
        self, principal: Principal, key: str | None, content: IO[bytes], level: Level
    ) -> Signed:
        """A detached CAdES signature (B-B or B-T) over any file."""
        from signer import cades

        identity = self.choose_key(principal, key)
        timestamper = self._timestamper(level)
        with self._open(principal, identity) as signing_key:
            signed = cades.sign_cms(content, signing_key, level=level, timestamper=timestamper)
            return self._signed(signed, signing_key, identity, level)

    def _signed(self, data: bytes, key: SigningKey, identity: Identity, level: Level) -> Signed:
        return Signed(
            data=data,
            signer=CertificateInfo.of(key.certificate),
            key_name=identity.name,
            level=level,
            signing_time=dt.datetime.now(dt.UTC),
        )

    def _timestamper(self, level: Level) -> TimeStamper | None:
        if level not in XML_CMS_LEVELS:
            raise InvalidRequest("XML and CMS signatures are made at level B-B or B-T")
        if level is Level.B_B:
            return None
        if self.timestamper is None:
            raise SigningFailed("B-T needs a time-stamping authority and none is configured")
        return self.timestamper

    # -- verifying -------------------------------------------------------------------------

    def _policy(self, offline: bool = False, at: dt.datetime | None = None) -> ValidationPolicy:
        if self.trust is None:
            return ValidationPolicy(
                self.trust_roots, offline=offline, at=at, local=self.local_answers
            )
        trusted = self.trust()
        backend = (
            KysoFetcherBackend(self.revocation, trusted.issuer_of) if self.revocation else None
        )
        return ValidationPolicy.of_trust(
            trusted, offline=offline, at=at, local=self.local_answers, fetcher_backend=backend
        )

    def verify(
        self,
        document: Path,
        content: Path | None = None,
        offline: bool = False,
        at: dt.datetime | None = None,
    ) -> Report:
        """Validate every signature of ``document`` (PDF, XML, or a .p7s over ``content``)."""
        from signer.verify import verify

        return verify(document, self._policy(offline, at), content)


def _kind_allowed(principal: Principal, kind: str) -> bool:
    """Whether ``principal`` may sign with a key of ``kind`` (a certificate profile).

    People signed in with their own account sign with what they were granted (the account's
    role limited the grant); an agency system's token signs with its agency's seals only.
    """
    return principal.in_person or kind in TOKEN_KEY_KINDS


def _check_kind(principal: Principal, name: str, kind: str, common_name: str) -> None:
    if _kind_allowed(principal, kind):
        return
    if kind == "person":
        raise personal_key_refused(name, common_name)
    raise KeyNotAllowed(f"key {name} is a {kind} key; this caller signs with seals only")


def _check_recorded_kind(
    principal: Principal, identity: Identity, record: CertificateRecord | None
) -> None:
    """The kind rule again, on the certificate actually opened: its profile in the CA's records
    (a key file swapped for an officer's is caught here)."""
    if record is not None:
        _check_kind(principal, identity.name, record.profile, record.common_name)
    elif not principal.in_person:
        raise KeyNotAllowed(f"the certificate of key {identity.name} was not issued by this PKI")


def _check_head(path: Path, kind: str) -> None:
    with path.open("rb") as stream:
        head = stream.read(1024)
    if not head:
        raise InvalidDocument(f"{path.name} is empty (0 bytes)")
    if kind == "PDF" and not looks_like_pdf(head):
        raise UnsupportedFormat(f"{path.name} is not a PDF (no %PDF- header)")


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO 8601 moment (``--at``); naive times are taken as UTC."""
    if text is None or not text.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest("at: use ISO 8601, e.g. 2026-11-25T14:07:09+07:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


__all__ = [
    "KeyRing",
    "PdfRequest",
    "Principal",
    "Signed",
    "SignedPdf",
    "SigningService",
    "key_name",
    "parse_box",
    "parse_level",
    "parse_time",
]
