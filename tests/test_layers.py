"""The layers hold at run time: what a fresh interpreter loads when it imports a layer.

`lint-imports` (make lint) checks the same rules on the source; these tests see what Python
really loads, dynamic imports included: a package never loads one above it
(kyso → exchange → signer → certs → directory), domain code loads no Flask outside the HTTP
adapters, the agency's client loads nothing of the relay, and XAdES loads no edXML. And the
environment is read in one place, kyso/config.py: configuration reaches everything else as
arguments.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("kyso", "exchange", "signer", "certs", "directory")
HTTP_ADAPTERS = ("exchange.http", "certs.http")
FLASK = ("flask", "werkzeug")

# Imports the modules named on the command line (with every submodule of a package after
# "--walk", but those after "--skip") and prints what sys.modules then holds.
CHILD = """
import importlib, json, pkgutil, sys

args = sys.argv[1:]
skip = set(args[args.index("--skip") + 1 :]) if "--skip" in args else set()
targets = args[: args.index("--skip")] if "--skip" in args else args
walk = targets[0] == "--walk"
for name in targets[1:] if walk else targets:
    module = importlib.import_module(name)
    if walk and hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, name + "."):
            if info.name not in skip:
                importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(*modules: str, walk: bool = False, skip: tuple[str, ...] = ()) -> set[str]:
    """The modules a fresh interpreter holds after importing ``modules``."""
    args = [*(["--walk"] if walk else []), *modules, *(["--skip", *skip] if skip else [])]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def within(loaded: set[str], packages: tuple[str, ...]) -> list[str]:
    """The loaded modules that are ``packages`` or inside them."""
    return sorted(m for m in loaded if m.split(".")[0] in packages)


@pytest.mark.parametrize("package", LAYERS[1:])
def test_a_domain_package_loads_no_layer_above_it_and_no_flask(package: str) -> None:
    above = LAYERS[: LAYERS.index(package)]
    loaded = loaded_by(package, walk=True, skip=HTTP_ADAPTERS)
    assert package in loaded
    assert within(loaded, above + FLASK) == []


def test_the_agency_client_loads_nothing_of_the_relay() -> None:
    loaded = loaded_by("exchange.client")
    relay = ("exchange.relay", "exchange.store", "exchange.auth", "exchange.audit")
    assert "exchange.client" in loaded
    assert sorted(m for m in loaded if m in relay) == []
    assert within(loaded, ("sqlalchemy", *FLASK)) == []


def test_xades_loads_no_edxml() -> None:
    loaded = loaded_by("signer.xades")
    assert "signer.cades" in loaded
    assert sorted(m for m in loaded if m in ("signer.edxml", "signer.xml_signing")) == []


# --- The environment is read in kyso/config.py only -------------------------------------------

ENVIRONMENT_READER = ROOT / "kyso" / "config.py"


def environment_reads(path: Path) -> list[str]:
    """Where ``path`` reads the process environment: ``os.environ``/``os.environb``,
    ``os.getenv``/``os.getenvb``, or those names imported from ``os`` (the WSGI environ of a
    request is another thing and passes)."""
    names = {"environ", "environb", "getenv", "getenvb"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in names for alias in node.names)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_kyso_config_reads_the_environment() -> None:
    sources = [p for package in LAYERS for p in sorted((ROOT / package).rglob("*.py"))]
    assert ENVIRONMENT_READER in sources
    assert environment_reads(ENVIRONMENT_READER)  # the check sees a read when there is one
    assert [r for p in sources if p != ENVIRONMENT_READER for r in environment_reads(p)] == []
