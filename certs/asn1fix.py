"""A fix for asn1crypto 1.5.1's detection of indefinite lengths when re-encoding.

Before encoding, asn1crypto's ``dump`` methods take a header whose *last byte* is 0x80 for an
indefinite (BER) length and force a full re-encoding of the value and everything inside it
(asn1crypto issue #249, still open). A definite long-form length whose low byte is 0x80 (128,
384, 640 … bytes: ``81 80``, ``82 01 80``) ends with 0x80 too. Inside a CMS signature being
assembled, one such length forces the re-encoding of the whole tree, and objects built from
native values read their contents several times per level: one B-T PDF signature in a few
dozen took ten seconds of CPU instead of thirty milliseconds (pyHanko as shipped, too).

A value really read with an indefinite length keeps its end-of-contents trailer
(``00 00``); for every other value whose header merely ends with 0x80 the header is dropped
before encoding, so asn1crypto recomputes it from the contents (the same bytes for DER)
instead of re-encoding the contents.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from asn1crypto import core

_PATCHED = "_kyso_definite_length_fix"
# The classes whose own ``dump`` holds the faulty check.
_WITH_THE_CHECK = (core.Asn1Value, core.Choice, core.Primitive, core.Sequence, core.SequenceOf)


def _definite_lengths_kept(dump: Callable[..., bytes]) -> Callable[..., bytes]:
    @functools.wraps(dump)
    def fixed(self: core.Asn1Value, force: bool = False) -> bytes:
        header = self._header
        if header is not None and header[-1:] == b"\x80" and not self._trailer:
            self._header = None  # definite length: recompute the header, keep the contents
        return dump(self, force)

    setattr(fixed, _PATCHED, True)
    return fixed


def install() -> None:
    """Patch every ``dump`` asn1crypto 1.5.1 gives the faulty check (idempotent)."""
    for cls in _WITH_THE_CHECK:
        dump = cls.__dict__.get("dump")
        if dump is not None and not getattr(dump, _PATCHED, False):
            cls.dump = _definite_lengths_kept(dump)


def definite_length_fix_installed() -> bool:
    return all(getattr(cls.__dict__["dump"], _PATCHED, False) for cls in _WITH_THE_CHECK)


install()
