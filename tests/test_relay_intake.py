"""The relay reads a package once: its XML is parsed (and schema-validated) a single time on the
way in, whether it came inline or as multipart parts, and the package the relay routes and stores
is the one the signature verification read, not a second parse of its bytes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exchange.auth import Principal, Role
from exchange.relay import Relay
from exchange.wire import detach
from kyso.app import SERVICES_KEY, create_app
from kyso.config import Settings
from signer import edxml, safexml

from .conftest import PASSPHRASE, KysoEnv
from .exchangetools import HUNG_DUNG, VINH, ExchangeEnv, clone_env, signed_package


@pytest.fixture(scope="module")
def env(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeEnv]:
    env, cleanup = clone_env(kyso_env, tmp_path_factory.mktemp("intake"))
    yield env
    cleanup()


@pytest.fixture(scope="module")
def relay(env: ExchangeEnv) -> Relay:
    """The relay of the real app, in this process (so that its parser can be watched)."""
    settings = {**env.env, "KYSO_EXCHANGE_WORKER": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("KYSO_")]:
            patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, value)
        app = create_app(Settings.load(), PASSPHRASE.encode())
    found: Relay = app.extensions[SERVICES_KEY].exchange.relay
    return found


def count_package_parses(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the calls of the one XML parser that read an edXML package (the receipt the
    relay signs is a status message: it is not counted)."""
    calls: list[Any] = []
    parse = safexml.parse

    def counting(data: bytes, *args: Any, **kwargs: Any) -> Any:
        tree = parse(data, *args, **kwargs)
        if edxml.document_kind(tree.getroot()) is edxml.DocumentKind.PACKAGE:
            calls.append(tree)
        return tree

    monkeypatch.setattr(safexml, "parse", counting)
    return lambda: len(calls)


def count_package_validations(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the schema validations of an edXML package."""
    kinds: list[edxml.DocumentKind] = []
    validate = edxml.validate

    def counting(tree: Any) -> edxml.DocumentKind:
        kind = validate(tree)
        if kind is edxml.DocumentKind.PACKAGE:
            kinds.append(kind)
        return kind

    monkeypatch.setattr(edxml, "validate", counting)
    return lambda: len(kinds)


@pytest.mark.parametrize("multipart", [False, True], ids=["inline", "multipart"])
def test_a_package_is_parsed_once(
    env: ExchangeEnv, relay: Relay, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    package = signed_package(env, HUNG_DUNG, [VINH])
    xml, parts = detach(package) if multipart else (package, [])
    assert bool(parts) is multipart
    parses = count_package_parses(monkeypatch)
    validations = count_package_validations(monkeypatch)

    accepted = relay.accept(Principal(Role.AGENCY, HUNG_DUNG), xml, parts)

    assert accepted.created and accepted.message.sender == HUNG_DUNG
    assert parses() == 1  # it was 3 inline and 4 multipart before the relay used it
    assert validations() == 1  # it was 2: once to verify, once more to read the package
