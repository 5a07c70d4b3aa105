"""Key stores: a signing key is named by a reference and opened into a pyHanko signer.

References:

* ``p12:PATH`` – an encrypted PKCS#12 bundle (key, certificate, chain);
* ``pkcs11:token=…;object=…`` – a key inside an HSM or token (RFC 7512), used through
  PKCS#11 without ever leaving the device.

Passphrases and PINs come from the caller (who reads them from the environment or a prompt):
for PKCS#11, the URI's ``pin-value`` or ``pin-source`` file, else the caller's
:class:`~certs.pkcs11uri.Pkcs11Access`; never from logs. This module reads no environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import cms, core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import (
    as_signing_certificate_v2,
    get_pyca_cryptography_hash,
    simple_cms_attribute,
)
from pyhanko.sign.signers import Signer, SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .errors import KeyFileError
from .keyfile import KeyBundle, PrivateKey, load_pkcs12
from .pkcs11uri import DEFAULT_ACCESS, Pkcs11Access, Pkcs11Uri

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class HsmError(KeyFileError):
    """The token, the key or its certificate could not be used."""


@dataclass
class SigningKey:
    """An opened signing key: the pyHanko signer plus the certificates that go with it."""

    reference: str
    signer: Signer
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> SigningKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


Parsed = TypeVar("Parsed", bound=core.Asn1Value)


def parsed_in_full(value: Parsed) -> Parsed:
    """``value``, with every field parsed now, so that threads may share it.

    asn1crypto parses a loaded value lazily, the first time a field is read, and fills in
    the list of children one at a time: a second thread reading meanwhile sees a partial
    list ("No field numbered 1 is present", found by the relay benchmark with two workers
    of four threads). A value shared between threads (trust roots, a signer's certificate,
    cached CRLs and OCSP answers) is parsed in full first, under no lock.
    """
    value.native  # noqa: B018 - parses every field, recursively
    return value


def shared_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    """:func:`to_asn1` for a certificate that threads will share (see :func:`parsed_in_full`)."""
    return parsed_in_full(to_asn1(certificate))


def from_asn1(certificate: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(certificate.dump())


class _EncodedAttribute(CMSAttributeProvider):
    """A signed attribute whose value never changes for a signer, kept as DER."""

    def __init__(self, attribute_type: str, der: bytes) -> None:
        self.attribute_type = attribute_type
        self._der = der

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
        # Read back from DER for each signature: asn1crypto re-encodes a value built from
        # native fields (and all inside it) every time it is dumped; a loaded one is not.
        return cms.CMSAttribute.load(self._der)


class LoadedKeySigner(SimpleSigner):
    """A :class:`SimpleSigner` that keeps its private key parsed.

    pyHanko's ``SimpleSigner`` parses the private key again for every signature (tens of
    milliseconds for RSA, as the key is validated each time); services that sign all day
    (the TSA, the relay's receipts) parse it once here. Other mechanisms fall back to pyHanko.

    pyHanko also builds the ESS signing-certificate-v2 attribute from native values for every
    signature, and its ten nested levels were then re-encoded several times over: most of the
    time of a PDF signature. It is encoded once per signer here.
    """

    def __init__(self, private_key: PrivateKey, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._private_key = private_key
        self._ess_der: dict[bytes, bytes] = {}  # certificate DER -> attribute DER

    def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for provider in super()._signed_attr_providers(*args, **kwargs):
            if isinstance(provider, SigningCertificateV2Provider):
                certificate = provider.signing_cert
                der = self._ess_der.get(certificate.dump())
                if der is None:
                    value = as_signing_certificate_v2(certificate)
                    der = simple_cms_attribute(provider.attribute_type, value).dump()
                    self._ess_der[certificate.dump()] = der
                yield _EncodedAttribute(provider.attribute_type, der)
            else:
                yield provider

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        try:
            name = mechanism.signature_algo
        except ValueError:
            name = mechanism["algorithm"].native
        key = self._private_key
        if name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if name == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        signature: bytes = super().sign_raw(data, digest_algorithm)
        return signature


def signer_from_bundle(bundle: KeyBundle) -> SimpleSigner:
    """A pyHanko signer for a key held in memory (parsed once, see :class:`LoadedKeySigner`)."""
    key_der = bundle.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return LoadedKeySigner(
        bundle.private_key,
        signing_cert=shared_asn1(bundle.certificate),
        # Only pyHanko's fallback mechanisms read it; not expanded into Python integers.
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        cert_registry=SimpleCertificateStore.from_certs([shared_asn1(c) for c in bundle.chain]),
    )


def open_key(
    reference: str,
    passphrase: bytes | None = None,
    extra_certs: tuple[x509.Certificate, ...] = (),
    pkcs11: Pkcs11Access = DEFAULT_ACCESS,
) -> SigningKey:
    """Open the key named by ``reference`` for signing.

    ``passphrase`` decrypts ``p12:`` files; ``pkcs11`` names the library and the PIN of a
    ``pkcs11:`` key whose URI does not; ``extra_certs`` completes the chain when the key store
    does not hold it (tokens usually hold only the end-entity certificate).
    """
    scheme, _, rest = reference.partition(":")
    if scheme == "p12":
        if passphrase is None:
            raise KeyFileError(f"a passphrase is needed to open {reference}")
        bundle = load_pkcs12(Path(rest), passphrase)
        if extra_certs:
            bundle = KeyBundle(
                bundle.private_key, bundle.certificate, (*bundle.chain, *extra_certs)
            )
        return SigningKey(reference, signer_from_bundle(bundle), bundle.certificate, bundle.chain)
    if scheme == "pkcs11":
        return _open_pkcs11(Pkcs11Uri.parse(reference), extra_certs, pkcs11)
    raise KeyFileError(
        f"unknown key reference {reference!r}: use p12:PATH or an RFC 7512 pkcs11: URI"
    )


def _module(uri: Pkcs11Uri, access: Pkcs11Access) -> str:
    module = uri.module_path or access.module
    if not Path(module).exists():
        raise HsmError(f"PKCS#11 module {module} not found (install it or set KYSO_PKCS11_MODULE)")
    return module


def resolve_pin(uri: Pkcs11Uri, access: Pkcs11Access) -> str:
    """The user PIN: the URI's pin-value, its pin-source file, or the one ``access`` gives."""
    if uri.pin_value:
        return uri.pin_value
    if uri.pin_source:
        source = uri.pin_source.removeprefix("file:")
        try:
            return Path(source).read_text().strip()
        except OSError as exc:
            raise HsmError(f"cannot read the PIN from {source}: {exc.strerror}") from exc
    if not access.pin:
        raise HsmError(f"no PIN for {uri.redacted()}: set KYSO_PKCS11_PIN or pin-source in the URI")
    return access.pin


def _token(uri: Pkcs11Uri, access: Pkcs11Access):  # type: ignore[no-untyped-def]
    import pkcs11

    lib = pkcs11.lib(_module(uri, access))
    try:
        if uri.slot_id is not None:
            slots = [s for s in lib.get_slots(token_present=True) if s.slot_id == uri.slot_id]
            if not slots:
                raise HsmError(f"no token in slot {uri.slot_id}")
            return slots[0].get_token()
        return lib.get_token(token_label=uri.token)
    except pkcs11.exceptions.NoSuchToken:
        raise HsmError(f"no PKCS#11 token labelled {uri.token!r}") from None
    except pkcs11.exceptions.MultipleTokensReturned:
        raise HsmError("several tokens match: add token=LABEL to the URI") from None


def _login(uri: Pkcs11Uri, access: Pkcs11Access, rw: bool = False):  # type: ignore[no-untyped-def]
    import pkcs11

    try:
        return _token(uri, access).open(rw=rw, user_pin=resolve_pin(uri, access))
    except pkcs11.exceptions.PinIncorrect:
        raise HsmError(f"wrong PIN for token {uri.token!r}") from None
    except pkcs11.exceptions.PKCS11Error as exc:
        raise HsmError(f"cannot open token {uri.token!r}: {type(exc).__name__}") from None


def _open_pkcs11(
    uri: Pkcs11Uri, extra_certs: tuple[x509.Certificate, ...], access: Pkcs11Access
) -> SigningKey:
    import pkcs11
    from pyhanko.sign.pkcs11 import PKCS11Signer

    session = _login(uri, access)
    signer = PKCS11Signer(
        session,
        key_label=uri.object,
        cert_label=uri.object,
        key_id=uri.id,
        cert_id=uri.id,
        ca_chain=[shared_asn1(c) for c in extra_certs],
        other_certs_to_pull=None,
        # Hash on the host and let the token do only the raw RSA/ECDSA operation: every token
        # offers CKM_RSA_PKCS and CKM_ECDSA, many lack the combined hash-and-sign mechanisms.
        use_raw_mechanism=True,
    )
    try:
        certificate = from_asn1(signer.signing_cert)  # pulls key and certificate from the token
    except (pkcs11.exceptions.PKCS11Error, LookupError, ValueError) as exc:
        session.close()
        raise HsmError(f"{uri.redacted()}: no usable key and certificate ({exc})") from None
    return SigningKey(uri.redacted(), signer, certificate, extra_certs, session.close)


def generate_in_token(
    uri: Pkcs11Uri, key_type: str = "rsa2048", access: Pkcs11Access = DEFAULT_ACCESS
) -> PublicKey:
    """Generate a key pair inside the token; only the public key comes out.

    The private key is created sensitive and non-extractable, so it can sign but never be read.
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
    from pkcs11.util.rsa import encode_rsa_public_key

    label = uri.object or "kyso-key"
    key_id = uri.id or label.encode()
    private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
    with _login(uri, access, rw=True) as session:
        try:
            if key_type.startswith("rsa"):
                bits = int(key_type[3:] or 2048)
                public, _ = session.generate_keypair(
                    KeyType.RSA,
                    bits,
                    label=label,
                    id=key_id,
                    store=True,
                    private_template=private_template,
                )
                der = encode_rsa_public_key(public)
            else:
                curve = {"p256": "secp256r1", "p384": "secp384r1"}[key_type]
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)},
                    local=True,
                )
                public, _ = params.generate_keypair(
                    label=label, id=key_id, store=True, private_template=private_template
                )
                der = encode_ec_public_key(public)
        except (KeyError, ValueError):
            raise HsmError(f"unknown key type {key_type!r}") from None
        except pkcs11.exceptions.PKCS11Error as exc:
            raise HsmError(f"the token refused to generate a key: {type(exc).__name__}") from None
    key = serialization.load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


def store_certificate_in_token(
    uri: Pkcs11Uri, certificate: x509.Certificate, access: Pkcs11Access = DEFAULT_ACCESS
) -> None:
    """Put the certificate next to its key (same label and id), as PKCS#11 tools expect."""
    from pkcs11 import Attribute, CertificateType, ObjectClass

    label = uri.object or "kyso-key"
    with _login(uri, access, rw=True) as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: label,
                Attribute.ID: uri.id or label.encode(),
                Attribute.SUBJECT: certificate.subject.public_bytes(),
                Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
            }
        )
