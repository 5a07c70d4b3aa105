"""certs.patches.NAME_EQUALITY: X.509 names equal exactly as asn1crypto says, only faster."""

from __future__ import annotations

from asn1crypto import x509 as asn1_x509
from hypothesis import given
from hypothesis import strategies as st

from certs.patches import asn1crypto_hashable, asn1crypto_names_equal, names_equal

from .fuzztools import fuzz_settings

VALUES = st.sampled_from(
    ["Nghệ An", "nghệ an", "  Nghệ   An ", "NGHỆ AN", "Nghe An", "Nghệ An", "Vinh", "VN", "vn"]
)
TYPES = st.sampled_from(["common_name", "organization_name", "locality_name"])
RDN = st.lists(st.tuples(TYPES, VALUES, st.booleans()), min_size=1, max_size=3)
NAME = st.lists(RDN, min_size=0, max_size=4)


def build(rdns: list[list[tuple[str, str, bool]]]) -> asn1_x509.Name:
    """A name as DER would carry it (read back, as from a certificate)."""
    sequence = asn1_x509.RDNSequence(
        [
            asn1_x509.RelativeDistinguishedName(
                [
                    asn1_x509.NameTypeAndValue(
                        {
                            "type": kind,
                            "value": asn1_x509.DirectoryString(
                                {"utf8_string" if utf8 else "bmp_string": value}
                            ),
                        }
                    )
                    for kind, value, utf8 in rdn
                ]
            )
            for rdn in rdns
        ]
    )
    return asn1_x509.Name.load(asn1_x509.Name(name="", value=sequence).dump())


@fuzz_settings(400)
@given(NAME, NAME)
def test_same_answer_as_asn1crypto(first: list, second: list) -> None:
    a, b = build(first), build(second)
    assert names_equal(a, b) == asn1crypto_names_equal(a, b)
    assert names_equal(a, a) and asn1crypto_names_equal(a, a)
    assert a.hashable == asn1crypto_hashable.fget(a.chosen)
    assert (a.hashable == b.hashable) == (
        asn1crypto_hashable.fget(a.chosen) == asn1crypto_hashable.fget(b.chosen)
    )


def test_installed_and_prepared_equal() -> None:
    spaced = build([[("common_name", "  UBND   tỉnh Nghệ An ", True)]])
    plain = build([[("common_name", "ubnd tỉnh nghệ an", False)]])
    other = build([[("common_name", "UBND thành phố Vinh", True)]])
    assert spaced.dump() != plain.dump()
    assert spaced == plain and spaced != other and spaced != "not a name"


def test_a_tagged_name_equals_the_same_name_untagged() -> None:
    issuer = build([[("organization_name", "UBND tỉnh Nghệ An", True)]])
    general = asn1_x509.GeneralName({"directory_name": issuer})
    tagged = asn1_x509.GeneralName.load(general.dump()).chosen  # as in an ESS IssuerSerial
    assert tagged.dump() != issuer.dump()
    assert tagged == issuer and issuer == tagged
    assert asn1crypto_names_equal(tagged, issuer)
