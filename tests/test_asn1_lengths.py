"""certs.patches.DEFINITE_LENGTHS: a definite length ending in 0x80 no longer forces re-encoding.

asn1crypto 1.5.1 took any header ending in 0x80 for an indefinite length; one such value
deep inside a CMS signature made assembling it exponential in the depth (a B-T PDF signature
in a few dozen took ten seconds).
"""

from __future__ import annotations

from asn1crypto import core

from certs.patches import DEFINITE_LENGTHS


class Level(core.SequenceOf):
    _child_spec = core.Any


def nested(inner: core.Asn1Value, depth: int) -> core.Asn1Value:
    """``inner`` wrapped in ``depth`` sequences built from Python values (so 'mutated')."""
    value = inner
    for _ in range(depth):
        value = Level([value, core.Any(core.Integer(1))])
    return value


def test_a_128_byte_value_is_not_reencoded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert DEFINITE_LENGTHS.installed
    der = b"\x04\x81\x80" + bytes(range(128))  # OCTET STRING, definite length 128 = 81 80
    inner = core.OctetString.load(der)
    calls = []
    original = core.OctetString.set

    def counted(self, value):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, value)

    monkeypatch.setattr(core.OctetString, "set", counted)
    outer = nested(core.Any.load(inner.dump()), 12)
    encoded = outer.dump()
    assert der in encoded and inner.dump() == der
    assert calls == []  # asn1crypto as shipped: re-encoded on each of thousands of reads


def test_an_indefinite_length_is_still_reencoded_as_der() -> None:
    ber = b"\x24\x80\x04\x03foo\x00\x00"  # constructed OCTET STRING, indefinite length
    assert core.OctetString.load(ber).dump() == b"\x04\x03foo"
