"""The agency directory: who exists, under whom, with which identifier code.

Agencies form a tree of any depth (province → department/district → commune today; other
shapes after the 2025 reform). The parent link is data: it is never derived from the code.

This is the floor of Kyso's layers: ``certs`` (seals and officers' certificates) and
``exchange`` (routing, the relay) both read it, and it imports nothing of Kyso. So it also
holds the one schema of Kyso's database (:mod:`directory.db`), and keeps the directory in it
(:mod:`directory.store`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# QCVN 102:2016 shape NNN.NN.NN.LNN, read from the right (level 1 is the letter group).
AGENCY_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")

DEMO_DIRECTORY = "nghe_an.json"


class DirectoryError(ValueError):
    """The directory data is inconsistent (bad code, unknown parent, cycle, duplicate)."""


class UnknownAgency(LookupError):
    """No agency has this code."""


def check_code(code: str) -> str:
    """Return ``code`` if it has the QCVN 102:2016 shape, else raise :class:`DirectoryError`."""
    if not AGENCY_CODE.match(code):
        raise DirectoryError(f"{code!r} is not an agency code of the shape NNN.NN.NN.LNN")
    return code


@dataclass(frozen=True)
class Agency:
    """One agency of the directory."""

    code: str
    name: str
    level: str
    parent: str | None = None
    province: str = ""
    email: str = ""
    address: str = ""


@dataclass(frozen=True)
class Officer:
    """A person who signs for an agency (demo data: gets a personal certificate)."""

    name: str
    title: str
    agency: str


@dataclass(frozen=True)
class Directory:
    """An agency tree, checked for unique codes, known parents and no cycles."""

    agencies: tuple[Agency, ...]
    officers: tuple[Officer, ...] = ()
    _by_code: dict[str, Agency] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for agency in self.agencies:
            check_code(agency.code)
            if agency.code in self._by_code:
                raise DirectoryError(f"agency code {agency.code} appears twice")
            self._by_code[agency.code] = agency
        for agency in self.agencies:
            if agency.parent is not None and agency.parent not in self._by_code:
                raise DirectoryError(
                    f"{agency.code}: parent {agency.parent} is not in the directory"
                )
            self.ancestors(agency.code)  # raises on a cycle
        for officer in self.officers:
            self.get(officer.agency)

    def get(self, code: str) -> Agency:
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownAgency(f"unknown agency {code}") from None

    def __iter__(self) -> Iterator[Agency]:
        return iter(self.agencies)

    def __len__(self) -> int:
        return len(self.agencies)

    def children(self, code: str) -> list[Agency]:
        return [a for a in self.agencies if a.parent == code]

    def ancestors(self, code: str) -> list[Agency]:
        """Parents of ``code`` up to the root, nearest first."""
        seen = {code}
        chain = []
        current = self.get(code)
        while current.parent is not None:
            if current.parent in seen:
                raise DirectoryError(f"the parent links of {code} form a cycle")
            seen.add(current.parent)
            current = self.get(current.parent)
            chain.append(current)
        return chain

    def depth(self, code: str) -> int:
        return len(self.ancestors(code))

    def walk(self) -> Iterator[tuple[int, Agency]]:
        """Depth-first, parents before children: (depth, agency)."""

        def visit(agency: Agency, depth: int) -> Iterator[tuple[int, Agency]]:
            yield depth, agency
            for child in self.children(agency.code):
                yield from visit(child, depth + 1)

        for root in (a for a in self.agencies if a.parent is None):
            yield from visit(root, 0)


def directory_from_json(data: dict[str, Any]) -> Directory:
    """Build a directory from its JSON form (see ``directory/data/nghe_an.json``)."""
    try:
        province = data.get("province", "")
        agencies = tuple(
            Agency(
                code=a["code"],
                name=a["name"],
                level=a["level"],
                parent=a.get("parent"),
                province=a.get("province", province),
                email=a.get("email", ""),
                address=a.get("address", ""),
            )
            for a in data["agencies"]
        )
        officers = tuple(
            Officer(name=o["name"], title=o["title"], agency=o["agency"])
            for o in data.get("officers", ())
        )
    except (KeyError, TypeError) as exc:
        raise DirectoryError(f"directory data is missing a field: {exc}") from None
    return Directory(agencies, officers)


def load_directory(path: Path | None = None) -> Directory:
    """Read a directory file; without ``path``, the demo directory shipped with Kyso."""
    if path is None:
        text = resources.files("directory.data").joinpath(DEMO_DIRECTORY).read_text("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return directory_from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise DirectoryError(f"directory file is not JSON: {exc}") from None
