"""Check, without the network, that the lock files pin every requirement of pyproject.toml.

Usage: check_lock.py PYPROJECT LOCK [BOOTSTRAP_LOCK]

Fails (exit 1, one line per problem) when a runtime or dev requirement of pyproject is missing
from the lock, is pinned at a version outside its range, when a pinned line carries no hash, or
when the bootstrap lock pins an installer at another version than the main lock.
Run `make lock` to repair.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def read_pins(lock: Path) -> tuple[dict[str, Version], list[str]]:
    """The lock's `name==version` pins by canonical name, and the names pinned without a hash."""
    pins: dict[str, Version] = {}
    unhashed: list[str] = []
    lines = lock.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        name = canonicalize_name(match.group(1))
        pins[name] = Version(match.group(2))
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if "--hash=" not in line and "--hash=" not in following:
            unhashed.append(name)
    return pins, unhashed


def requirements(pyproject: Path) -> list[Requirement]:
    """Runtime and every optional group's requirements, as pyproject states them."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    texts = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        texts.extend(group)
    return [Requirement(text) for text in texts]


def problems(pyproject: Path, lock: Path, bootstrap: Path | None) -> list[str]:
    pins, unhashed = read_pins(lock)
    found = [f"{lock}: {name} is pinned without a hash" for name in unhashed]
    for req in requirements(pyproject):
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if name not in pins:
            found.append(f"{lock}: {req.name} (pyproject: {req}) is not pinned")
        elif req.specifier and not req.specifier.contains(pins[name], prereleases=True):
            found.append(f"{lock}: {req.name}=={pins[name]} is outside pyproject's range {req}")
    if bootstrap is not None:
        boot_pins, boot_unhashed = read_pins(bootstrap)
        found += [f"{bootstrap}: {name} is pinned without a hash" for name in boot_unhashed]
        for name, version in boot_pins.items():
            if pins.get(name) != version:
                found.append(f"{bootstrap}: {name}=={version} differs from {lock}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    bootstrap = Path(argv[3]) if len(argv) == 4 else None
    found = problems(Path(argv[1]), Path(argv[2]), bootstrap)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print("The lock does not match pyproject.toml: run `make lock`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
