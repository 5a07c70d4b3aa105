"""certs.patches: Kyso's changes to third-party libraries, installed only when asked, and each
still needed (the library as shipped still misbehaves on the input that called for it)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from typing import ClassVar
from unittest import mock

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from certs import patches
from certs.patches import DEFINITE_LENGTHS, HEX_STRINGS, NAME_EQUALITY, XREF_ROWS, Patch

from .test_pdf_bombs import xref_stream_revision


def upstream_fixed(patch: Patch, what: str) -> str:
    return (
        f"upstream fixed {what} ({patch.upstream}): remove patch {patch.name!r} "
        "from certs/patches.py, and its tests"
    )


# --- Each patch is still needed ----------------------------------------------------------------


class Pair(core.Sequence):
    _fields: ClassVar = [("flag", core.Boolean), ("data", core.OctetString)]


# A SEQUENCE of 128 content bytes (definite length 81 80) whose BOOLEAN is BER (01, not DER's
# FF): any re-encoding of the contents shows as a changed byte.
LENGTH_128 = b"\x30\x81\x80" + b"\x01\x01\x01" + b"\x04\x7b" + bytes(123)


def test_asn1crypto_still_reencodes_a_definite_length_ending_in_0x80() -> None:
    with patches.removed(DEFINITE_LENGTHS):
        shipped = Pair.load(LENGTH_128).dump()
    assert shipped != LENGTH_128, upstream_fixed(DEFINITE_LENGTHS, "lengths ending in 0x80")
    assert shipped[:6] == b"\x30\x81\x80\x01\x01\xff"  # re-encoded, as if BER indefinite
    assert Pair.load(LENGTH_128).dump() == LENGTH_128  # patched: the contents are kept


def pdf_declaring_rows_it_does_not_hold(rows: int) -> bytes:
    out = io.BytesIO()
    PdfFileWriter().write(out)
    reader = PdfFileReader(io.BytesIO(out.getvalue()))
    number = int(reader.trailer["/Size"])
    root = reader.trailer.raw_get("/Root").idnum
    index = b"%d %d" % (number, rows)
    return xref_stream_revision(out.getvalue(), {number: b"null"}, root, index=index)


def test_pyhanko_still_reads_rows_a_cross_reference_stream_does_not_hold() -> None:
    crafted = pdf_declaring_rows_it_does_not_hold(5000)  # holds 2 rows, in about 650 bytes
    with patches.removed(XREF_ROWS):
        try:
            PdfFileReader(io.BytesIO(crafted), strict=False)
        except PdfReadError as exc:
            pytest.fail(upstream_fixed(XREF_ROWS, f"rows beyond an xref stream's data: {exc}"))
    with pytest.raises(PdfReadError, match="declare 5000 objects, too many"):
        PdfFileReader(io.BytesIO(crafted), strict=False)


class CountingReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def reads_of_a_hex_string(digits: int) -> int:
    stream = CountingReads(b"<" + b"a" * digits + b">")
    generic.read_object(stream, generic.Reference(1, 0))
    return stream.reads


def test_pyhanko_still_reads_hex_strings_a_byte_at_a_time() -> None:
    with patches.removed(HEX_STRINGS):
        shipped = reads_of_a_hex_string(2000)
    assert shipped > 2000, upstream_fixed(HEX_STRINGS, f"hex strings: {shipped} reads")
    assert reads_of_a_hex_string(2000) < 10


def preparations(compare: bool, copies: int) -> int:
    """Calls of asn1crypto's LDAP string preparation for ``copies`` parsed copies of one name,
    compared with the first (``compare``) or hashed three times each."""
    der = asn1_x509.Name.build({"common_name": "UBND tỉnh Nghệ An", "country_name": "VN"}).dump()
    names = [asn1_x509.Name.load(der) for _ in range(copies)]
    prep = asn1_x509.NameTypeAndValue._ldap_string_prep
    with mock.patch.object(
        asn1_x509.NameTypeAndValue, "_ldap_string_prep", autospec=True, side_effect=prep
    ) as counted:
        patches.prepared.cache_clear()
        patches._hashable.cache_clear()
        for name in names:
            if compare:
                assert name == names[0]
            else:
                assert name.hashable == name.hashable == name.hashable
        return counted.call_count


def test_asn1crypto_still_prepares_every_copy_of_a_name_again() -> None:
    with patches.removed(NAME_EQUALITY):
        compared, hashed = preparations(True, 10), preparations(False, 10)
    # Two attributes per name: at least one preparation per attribute and copy.
    assert compared >= 20, upstream_fixed(NAME_EQUALITY, f"Name.__eq__: {compared} preparations")
    assert hashed >= 20, upstream_fixed(NAME_EQUALITY, f"hashable: {hashed} preparations")
    assert preparations(False, 10) <= 2  # patched: once per distinct name
    assert preparations(True, 10) == 0  # patched: the same DER is the same name


# --- Installed on request only -----------------------------------------------------------------

# Run in a fresh interpreter: every module of Kyso's packages imported, then every attribute of
# every third-party module and class looked at for code that Kyso wrote.
SCAN = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, types
    from pathlib import Path

    OWN = ("certs", "signer", "exchange", "kyso")
    for package in OWN:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not info.name.startswith("kyso.migrations"):  # Alembic scripts, not modules
                importlib.import_module(info.name)
    ROOTS = tuple(str(Path(sys.modules[p].__file__).parent) for p in OWN)

    def kyso_wrote(value):
        # type(), never isinstance(): proxies (werkzeug's LocalProxy) answer for __class__.
        kind = type(value)
        if kind is property:
            value, kind = value.fget, type(value.fget)
        if kind in (staticmethod, classmethod):
            value, kind = value.__func__, type(value.__func__)
        if issubclass(kind, type):
            module = vars(value).get("__module__")
            return isinstance(module, str) and module.split(".")[0] in OWN
        return kind is types.FunctionType and value.__code__.co_filename.startswith(ROOTS)

    def patched():
        found = set()
        for name, module in list(sys.modules.items()):
            if module is None or name.split(".")[0] in OWN or name == "__main__":
                continue
            for attribute, value in list(vars(module).items()):
                if kyso_wrote(value):
                    found.add(f"{name}.{attribute}")
                if issubclass(type(value), type) and vars(value).get("__module__") == name:
                    for member, inner in list(vars(value).items()):
                        if kyso_wrote(inner):
                            found.add(f"{name}.{value.__qualname__}.{member}")
        return sorted(found)

    on_import = patched()
    from certs import patches

    patches.install()
    patches.install()
    installed = patched()
    expected = sorted(
        f"{getattr(r.owner, '__module__', '') or ''}.{r.owner.__qualname__}.{r.attribute}"
        if isinstance(r.owner, type)
        else f"{r.owner.__name__}.{r.attribute}"
        for patch in patches.PATCHES
        for r in patch.replacements
    )
    print(json.dumps({"on_import": on_import, "installed": installed, "expected": expected}))
    """
)


def test_importing_kyso_changes_no_library_until_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCAN], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["on_import"] == [], "patched on import, not by certs.patches.install()"
    assert found["installed"] == found["expected"]
    assert "asn1crypto.core.Sequence.dump" in found["installed"]
    assert "pyhanko.pdf_utils.generic.read_hex_string_from_stream" in found["installed"]


def test_removed_puts_back_what_the_library_shipped() -> None:
    assert all(patch.installed for patch in patches.PATCHES)
    with patches.removed(*patches.PATCHES):
        assert asn1_x509.Name.__eq__ is patches.asn1crypto_names_equal
        assert generic.read_hex_string_from_stream is patches.pyhanko_read_hex_string
        assert not any(patch.installed for patch in patches.PATCHES)
    assert all(patch.installed for patch in patches.PATCHES)
    assert generic.read_hex_string_from_stream is patches.read_hex_string
