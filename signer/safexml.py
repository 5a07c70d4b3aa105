"""The one hardened XML parser: every XML byte Kyso reads goes through :func:`parse`.

XML that could make a parser read files, open connections or blow up memory is refused
before it is parsed, with a message that names the reason (:class:`HostileXml`):

* a document type declaration (``<!DOCTYPE``): no DTD, so no entities, no external
  entities (XXE) and no entity expansion (billion laughs) can exist;
* XInclude elements (they would pull other resources into the tree if anyone processed them);
* documents over the size limit (:class:`DocumentTooLarge`) and elements nested deeper
  than the depth limit;
* character encodings other than UTF-8, UTF-16 and ASCII-compatible single-byte ones (an
  exotic encoding such as UTF-7 could hide a DOCTYPE from the scan).

The libxml2 parser behind lxml is configured so that even a declaration that slipped past
the scan could do no harm: entities are not resolved, DTDs are not loaded, the network is
off and libxml2's own limits (``huge_tree=False``) stay on.
"""

from __future__ import annotations

import codecs
import functools
import re
import threading
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import DocumentTooLarge, HostileXml, InvalidDocument, SignerError

MAX_XML_BYTES = 50 * 1024 * 1024  # as signer.verify; one text node stays under 10 MB
MAX_DEPTH = 64
XINCLUDE_NAMESPACES = frozenset(
    {"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"}
)
# ASCII-compatible single-byte encodings cannot hide a DOCTYPE from a byte scan; windows-1258
# is Vietnamese legacy. Others (UTF-7, EBCDIC…) could, and are refused.
ACCEPTED_ENCODINGS = frozenset(
    {"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii"}
    | {"iso-8859-1", "latin1", "latin-1", "windows-1252", "windows-1258"}
)

_DECLARED_ENCODING = re.compile(r"""^<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class XmlLimits:
    """How big and how deep a document may be."""

    max_bytes: int = MAX_XML_BYTES
    max_depth: int = MAX_DEPTH


DEFAULT_LIMITS = XmlLimits()


def secure_parser() -> etree.XMLParser:
    """This thread's libxml2 parser (lxml parsers must not be shared between threads), which
    resolves nothing, loads nothing and keeps its resource limits."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = _new_secure_parser()
    return parser


_parsers = threading.local()


def _new_secure_parser() -> etree.XMLParser:
    """Comments and processing instructions are kept: signature verification must see them
    (a comment inside signed text is an attack, not noise).
    """
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def parse(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Any:
    """Parse ``data`` into an lxml ``ElementTree`` or refuse it.

    Raises :class:`DocumentTooLarge` over ``limits.max_bytes``, :class:`HostileXml` for
    DTDs, XInclude, exotic encodings or nesting deeper than ``limits.max_depth``, and
    :class:`InvalidDocument` for anything that is not well-formed XML. Never touches the
    network or the file system.
    """
    if not isinstance(data, bytes):
        raise TypeError("safexml.parse takes bytes")
    if len(data) > limits.max_bytes:
        raise DocumentTooLarge(
            f"XML document is {len(data)} bytes, over the limit of {limits.max_bytes} bytes"
        )
    text_codec = _scan_codec(data)
    _refuse_doctype(data, text_codec)
    try:
        root = etree.fromstring(data, secure_parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, limits) from None
    tree = root.getroottree()
    # Second line of defence: the scan above should have caught every DOCTYPE already.
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise HostileXml("XML refused: document type declarations (DTD) are not allowed")
    _check_elements(root, limits)
    return tree


def _scan_codec(data: bytes) -> str:
    """The codec to read the document's bytes with, after checking its declared encoding."""
    codec = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            codec = name
            break
    else:
        if data.startswith(b"<\x00"):  # UTF-16 without a byte order mark
            codec = "utf-16-le"
        elif data.startswith(b"\x00<"):
            codec = "utf-16-be"
    if codec.startswith("utf-32"):
        raise HostileXml("XML refused: UTF-32 documents are not accepted (use UTF-8)")
    head = data[:512].decode(codec, errors="replace").lstrip("\ufeff")
    declared = _DECLARED_ENCODING.match(head)
    if declared and declared.group(1).lower() not in ACCEPTED_ENCODINGS:
        raise HostileXml(f"XML refused: encoding {declared.group(1)!r} is not accepted (use UTF-8)")
    return codec


def _refuse_doctype(data: bytes, codec: str) -> None:
    marker = "<!DOCTYPE"
    found = (
        marker.encode() in data
        if codec == "utf-8"
        else marker in data.decode(codec, errors="replace")
    )
    if found:
        raise HostileXml(
            "XML refused: document type declarations (DTD) are not allowed "
            "(they enable external entities and entity expansion)"
        )


def _syntax_error(exc: etree.XMLSyntaxError, limits: XmlLimits) -> SignerError:
    message = " ".join(str(exc).split())
    if "Excessive depth" in message:
        return HostileXml(f"XML refused: elements nested deeper than {limits.max_depth} levels")
    if "too long" in message or "Resource limit" in message or "huge" in message.lower():
        return DocumentTooLarge(f"XML refused: a text node exceeds the parser's limit ({message})")
    if "ntity" in message and ("loop" in message or "amplification" in message):
        return HostileXml(f"XML refused: entity expansion ({message})")
    return InvalidDocument(f"not well-formed XML: {message}")


def _check_elements(root: Any, limits: XmlLimits) -> None:
    """Refuse XInclude elements and too-deep nesting, walking the tree in libxml2 (no Python
    loop over the elements, no recursion to exhaust)."""
    if next(root.iter(*_XINCLUDE_TAGS), None) is not None:
        raise HostileXml("XML refused: XInclude is not allowed")
    if root.xpath(_deeper_than(limits.max_depth)):
        raise HostileXml(f"XML refused: elements nested deeper than {limits.max_depth} levels")


_XINCLUDE_TAGS = tuple(f"{{{namespace}}}*" for namespace in sorted(XINCLUDE_NAMESPACES))


@functools.lru_cache(maxsize=8)
def _deeper_than(depth: int) -> str:
    """An XPath that is true when an element lies more than ``depth`` levels down."""
    return "boolean(/" + "/".join(["*"] * (depth + 1)) + ")"
