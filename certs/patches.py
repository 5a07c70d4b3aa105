"""Every change Kyso makes to a third-party library, in one place, installed on request.

Importing this module (or any other of Kyso's) changes nothing in asn1crypto or pyHanko:
the entry points call :func:`install` (the ``kyso`` command before a command runs, the app
factory, the benchmarks, the test suite). A process that imports ``signer`` without going
through one of them reads PDFs and ASN.1 with the libraries as shipped: slower, and without
the cross-reference row check that bounds a hostile PDF's memory.

Each :class:`Patch` names the upstream issue or version it works around, and
``tests/test_patches.py`` checks that the library as shipped still misbehaves on the input
that made the patch necessary; the day upstream fixes it, that test says which patch to
remove.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.generic import HEX_DIGITS
from pyhanko.pdf_utils.misc import PDF_WHITESPACE, PdfReadError
from pyhanko.pdf_utils.xref import XRefBuilder

# ISO 32000-1 Annex C: at most 8 388 607 indirect objects in a PDF file.
MAX_PDF_OBJECTS = 8_388_607
# A real file spends far more than 16 bytes on each object its cross-reference streams list.
MIN_BYTES_PER_XREF_ROW = 16


@dataclass(frozen=True)
class Replacement:
    """``owner.attribute`` (of a class or a module) as shipped, and Kyso's replacement."""

    owner: Any
    attribute: str
    original: Any
    replacement: Any

    @property
    def installed(self) -> bool:
        return vars(self.owner).get(self.attribute) is self.replacement


def replace(owner: Any, attribute: str, make: Callable[[Any], Any]) -> Replacement:
    """The replacement of ``owner.attribute`` by ``make(what it is now)``; nothing is set yet."""
    original = vars(owner)[attribute]
    return Replacement(owner, attribute, original, make(original))


@dataclass(frozen=True)
class Patch:
    """One fix of a third-party library: a few attributes replaced, reversibly.

    ``upstream`` names what it works around (an issue, or the version it was written for):
    what to check before removing it.
    """

    name: str
    upstream: str
    replacements: tuple[Replacement, ...]

    def install(self) -> None:
        """Set every replacement (idempotent)."""
        for r in self.replacements:
            if not r.installed:
                setattr(r.owner, r.attribute, r.replacement)

    def uninstall(self) -> None:
        """Put back what the library shipped (idempotent)."""
        for r in self.replacements:
            if r.installed:
                setattr(r.owner, r.attribute, r.original)

    @property
    def installed(self) -> bool:
        return all(r.installed for r in self.replacements)


# --- asn1crypto: a definite length ending in 0x80 taken for an indefinite one ----------------


def _definite_lengths_kept(dump: Callable[..., bytes]) -> Callable[..., bytes]:
    """asn1crypto 1.5.1's ``dump``, without re-encoding values whose definite length ends in 0x80.

    Works around asn1crypto issue #249 (open; the fix proposed in pull request #302 was not
    merged). Before encoding, ``dump`` takes a header whose *last byte* is 0x80 for an
    indefinite (BER) length and forces a full re-encoding of the value and everything inside
    it. A definite long-form length whose low byte is 0x80 (128, 384, 640 … bytes: ``81 80``,
    ``82 01 80``) ends with 0x80 too. Inside a CMS signature being assembled, one such length
    forces the re-encoding of the whole tree, and objects built from native values read their
    contents several times per level: one B-T PDF signature in a few dozen took ten seconds of
    CPU instead of thirty milliseconds (pyHanko as shipped, too).

    A value really read with an indefinite length keeps its end-of-contents trailer
    (``00 00``); for every other value whose header merely ends with 0x80 the header is
    dropped before encoding, so asn1crypto recomputes it from the contents (the same bytes
    for DER) instead of re-encoding the contents.
    """

    @functools.wraps(dump)
    def fixed(self: core.Asn1Value, force: bool = False) -> bytes:
        header = self._header
        if header is not None and header[-1:] == b"\x80" and not self._trailer:
            self._header = None  # definite length: recompute the header, keep the contents
        return dump(self, force)

    return fixed


DEFINITE_LENGTHS = Patch(
    "definite-lengths",
    "asn1crypto issue #249 (asn1crypto 1.5.1): a definite length ending in 0x80 re-encodes",
    tuple(
        # The classes whose own ``dump`` holds the faulty check.
        replace(cls, "dump", _definite_lengths_kept)
        for cls in (core.Asn1Value, core.Choice, core.Primitive, core.Sequence, core.SequenceOf)
    ),
)


# --- pyHanko: cross-reference streams that list rows they do not hold --------------------------


def _declared_xref_rows(xrefstream: generic.StreamObject) -> tuple[int, int]:
    """(rows, bytes per row) that a cross-reference stream's /Index (or /Size) and /W declare."""
    widths = xrefstream["/W"]
    index = xrefstream["/Index"] if "/Index" in xrefstream else [0, xrefstream["/Size"]]
    if not isinstance(widths, list) or not isinstance(index, list):
        raise PdfReadError("cross-reference stream without a valid /W or /Index")
    width = sum(max(0, int(w)) for w in widths)
    rows = sum(max(0, int(count)) for count in list(index)[1::2])
    return rows, width


def _xref_rows_checked(original: Callable[[XRefBuilder], Any]) -> Callable[[XRefBuilder], Any]:
    """pyHanko 0.38's cross-reference stream reader, refusing rows a stream does not hold.

    Works around pyHanko 0.38.0 (``XRefBuilder._read_xref_stream_object``; no upstream
    issue filed): reading leniently (``strict=False``, as every Kyso reader does), it makes
    up a default entry for each row a cross-reference stream declares beyond its data, so a
    75 KB file whose last revision says ``/Index [0 1099511627775]`` keeps it looping and
    allocating until the machine runs out of memory. The check runs where pyHanko reads
    each cross-reference stream, before its rows are parsed, so it covers every reader in
    the process (verification, signing, the web preview): rows must fit in the decoded
    data, number at most :data:`MAX_PDF_OBJECTS`, and, over all revisions, at most one per
    :data:`MIN_BYTES_PER_XREF_ROW` bytes of the file.
    """

    @functools.wraps(original)
    def read_checked(self: XRefBuilder) -> Any:
        ref, xrefstream = original(self)
        rows, width = _declared_xref_rows(xrefstream)
        position = self.stream.tell()
        file_size = self.stream.seek(0, 2)
        self.stream.seek(position)
        total = getattr(self, "_kyso_xref_rows", 0) + rows
        if rows and not width:
            raise PdfReadError("cross-reference stream with rows of zero bytes (/W)")
        if rows > MAX_PDF_OBJECTS or total > max(1024, file_size // MIN_BYTES_PER_XREF_ROW):
            raise PdfReadError(f"cross-reference streams declare {total} objects, too many")
        data = xrefstream.read_data(DecodePurpose.XREF_STREAM, expected_size=rows * (width + 1))
        if rows * width > len(data):
            raise PdfReadError(
                f"cross-reference stream declares {rows} rows of {width} bytes "
                f"but holds {len(data)} bytes"
            )
        self._kyso_xref_rows = total  # type: ignore[attr-defined]
        return ref, xrefstream

    return read_checked


XREF_ROWS = Patch(
    "xref-rows",
    "pyHanko 0.38.0: a cross-reference stream's /Index may declare rows it does not hold",
    (replace(XRefBuilder, "_read_xref_stream_object", _xref_rows_checked),),
)


# --- pyHanko: hex strings read one byte per Python call ----------------------------------------

_HEX_BLOCK = 64 * 1024
pyhanko_read_hex_string: Callable[[BinaryIO], Any] = generic.read_hex_string_from_stream


def read_hex_string(stream: BinaryIO) -> generic.ByteStringObject | generic.TextStringObject:
    """pyHanko's ``read_hex_string_from_stream``, a block at a time instead of a byte at a time.

    Works around pyHanko 0.38.0 (``generic.read_hex_string_from_stream`` reads one token per
    Python call; no upstream issue filed). A signature's /Contents is a hex string of
    10–30 KB: a third of the time of verifying a one-page signed PDF. A string of hex
    digits and whitespace is decoded here in a few bytes operations; anything else (a
    comment, a bad character, no closing ``>``) goes back to pyHanko's reader from the same
    position, so the result and the errors are exactly pyHanko's.
    """
    start = stream.tell()
    stream.read(1)  # the opening "<"
    parts = []
    while True:
        chunk = stream.read(_HEX_BLOCK)
        end = chunk.find(b">")
        parts.append(chunk if end < 0 else chunk[:end])
        if end >= 0 or not chunk:
            break
    digits = b"".join(parts).translate(None, PDF_WHITESPACE)
    if end < 0 or digits.translate(None, HEX_DIGITS):
        stream.seek(start)
        result: generic.ByteStringObject | generic.TextStringObject = pyhanko_read_hex_string(
            stream
        )
        return result
    stream.seek(start + 1 + sum(map(len, parts)) + 1)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


HEX_STRINGS = Patch(
    "hex-strings",
    "pyHanko 0.38.0: read_hex_string_from_stream reads a hex string one byte per call",
    # read_object looks the reader up in the module at each call.
    (replace(generic, "read_hex_string_from_stream", lambda _: read_hex_string),),
)


# --- asn1crypto: X.509 names prepared again for every comparison -------------------------------

PreparedName = tuple[tuple[int, tuple[tuple[str, str], ...]], ...]
asn1crypto_names_equal: Callable[[asn1_x509.Name, Any], bool] = vars(asn1_x509.Name)["__eq__"]
asn1crypto_hashable: property = vars(asn1_x509.RDNSequence)["hashable"]


@functools.lru_cache(maxsize=8192)
def prepared(der: bytes) -> PreparedName:
    """The comparable form of the DER-encoded ``RDNSequence`` ``der``."""
    rdns = asn1_x509.RDNSequence.load(der)
    return tuple((len(rdn), tuple(sorted(rdn._get_values(rdn).items()))) for rdn in rdns)


def names_equal(name: asn1_x509.Name, other: Any) -> bool:
    """``name == other`` as asn1crypto defines it, each distinct name prepared once.

    Works around asn1crypto 1.5.1 (``Name.__eq__``; no upstream issue filed), which compares
    names as RFC 5280 7.1 asks: every attribute value through LDAP string preparation (RFC
    4518), redone for every parsed copy of a name. pyHanko and certvalidator compare the
    same few CA and signer names dozens of times per signature (issuer and serial matching,
    path building, CRL issuers): more than a third of the time of verifying a one-page
    signed PDF. Here the prepared form of a name is computed once per distinct DER encoding
    and kept (bounded), and two names are equal when their prepared forms are: the same RDN
    count, and per RDN the same attribute count and the same type → prepared-value map,
    which is the test asn1crypto's ``RDNSequence`` and ``RelativeDistinguishedName`` apply.
    """
    if not isinstance(other, asn1_x509.Name):
        return False
    # The RDNSequence inside: a name in a GeneralName carries an explicit [4] tag around it.
    mine, theirs = name.chosen.dump(), other.chosen.dump()
    return mine == theirs or prepared(mine) == prepared(theirs)


@functools.lru_cache(maxsize=8192)
def _hashable(der: bytes) -> str:
    value: str = asn1crypto_hashable.fget(asn1_x509.RDNSequence.load(der))  # type: ignore[misc]
    return value


def rdn_sequence_hashable(sequence: asn1_x509.RDNSequence) -> str:
    """``sequence.hashable`` as asn1crypto computes it, once per distinct DER encoding.

    Works around asn1crypto 1.5.1 (``RDNSequence.hashable`` is recomputed at every access;
    no upstream issue filed): certvalidator keys its certificate registry and CRL lookups
    by it.
    """
    return _hashable(sequence.dump())


NAME_EQUALITY = Patch(
    "name-equality",
    "asn1crypto 1.5.1: Name.__eq__ and RDNSequence.hashable prepare every copy of a name again",
    (
        replace(asn1_x509.Name, "__eq__", lambda _: names_equal),
        replace(asn1_x509.RDNSequence, "hashable", lambda _: property(rdn_sequence_hashable)),
    ),
)


PATCHES = (DEFINITE_LENGTHS, XREF_ROWS, HEX_STRINGS, NAME_EQUALITY)


def install() -> None:
    """Install every patch (idempotent): once per process, before any document is read."""
    for patch in PATCHES:
        patch.install()


@contextlib.contextmanager
def removed(*patches: Patch) -> Iterator[None]:
    """The libraries as shipped, as far as ``patches`` go, inside the block (for baselines and
    for the tests that check upstream still needs them); put back as they were afterwards.

    Not for concurrent use: the libraries are changed for the whole process.
    """
    were = [patch.installed for patch in patches]
    for patch in patches:
        patch.uninstall()
    try:
        yield
    finally:
        for patch, was in zip(patches, were, strict=True):
            if was:
                patch.install()
