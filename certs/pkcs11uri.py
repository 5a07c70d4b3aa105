"""RFC 7512 ``pkcs11:`` URIs naming a key in an HSM or token, and how to reach the token."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_to_bytes

from .errors import KeyFileError

_PATH_ATTRS = {
    "token",
    "manufacturer",
    "serial",
    "model",
    "object",
    "type",
    "id",
    "slot-id",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
}
_QUERY_ATTRS = {"module-path", "module-name", "pin-value", "pin-source"}
DEFAULT_PKCS11_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class InvalidPkcs11Uri(KeyFileError):
    """The text is not an RFC 7512 URI Kyso can use."""


@dataclass(frozen=True)
class Pkcs11Access:
    """What a key's URI may leave unsaid: the PKCS#11 library and the token's user PIN.

    Given by the caller (Kyso reads ``KYSO_PKCS11_MODULE`` and ``KYSO_PKCS11_PIN`` in
    ``kyso/config.py``); the URI's own ``module-path``, ``pin-value`` and ``pin-source`` win.
    """

    module: str = DEFAULT_PKCS11_MODULE
    pin: str | None = field(default=None, repr=False)  # never in a log line


DEFAULT_ACCESS = Pkcs11Access()  # SoftHSM2's module, no PIN but the URI's


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of a ``pkcs11:`` URI Kyso uses to find a signing key."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    slot_id: int | None = None
    module_path: str | None = None
    pin_value: str | None = None
    pin_source: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``pkcs11:token=…;object=…?module-path=…&pin-source=…``."""
        if not text.startswith("pkcs11:"):
            raise InvalidPkcs11Uri(f"not a pkcs11: URI: {text!r}")
        path, _, query = text[len("pkcs11:") :].partition("?")
        attrs: dict[str, str] = {}
        raw_id: bytes | None = None
        for part, allowed, sep in ((path, _PATH_ATTRS, ";"), (query, _QUERY_ATTRS, "&")):
            for item in filter(None, part.split(sep)):
                name, eq, value = item.partition("=")
                if not eq or name not in allowed:
                    raise InvalidPkcs11Uri(f"unknown or malformed attribute {item!r} in {text!r}")
                if name == "id":
                    raw_id = unquote_to_bytes(value)
                attrs[name] = unquote(value)
        if attrs.get("type", "private") not in {"private", "cert"}:
            raise InvalidPkcs11Uri("a signing key reference must have type=private or type=cert")
        if not (attrs.get("object") or raw_id):
            raise InvalidPkcs11Uri(f"{text!r} names no key (give object=LABEL or id=…)")
        slot = attrs.get("slot-id")
        return cls(
            token=attrs.get("token"),
            object=attrs.get("object"),
            id=raw_id,
            slot_id=int(slot) if slot and slot.isdigit() else None,
            module_path=attrs.get("module-path"),
            pin_value=attrs.get("pin-value"),
            pin_source=attrs.get("pin-source"),
        )

    def redacted(self) -> str:
        """A form safe for logs: never the PIN."""
        parts = [f"{k}={v}" for k, v in (("token", self.token), ("object", self.object)) if v]
        if self.id:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        return "pkcs11:" + ";".join(parts)
