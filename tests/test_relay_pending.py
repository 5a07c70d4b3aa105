"""Verification pending: a package whose signer's revocation status cannot be fetched now
(INDETERMINATE/TRY_LATER) is held, receipted at once, owed to no recipient, verified again by
the worker's housekeeping, then delivered once or refused with a relay status 02.

The verdict is steered in process: the real verification runs, then its outcome is replaced by
TRY_LATER (a responder that does not answer) or REVOKED, as the relay would see them."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from certs.keystore import open_key
from exchange import audit as events
from exchange import views
from exchange.auth import Principal, Role
from exchange.client import Check, verify_trail
from exchange.errors import InvalidTransition, SignatureRejected
from exchange.message_store import PENDING, REFUSED, VERIFIED
from exchange.pending import PendingResult
from exchange.service import Exchange
from exchange.store import audit_log
from exchange.wire import sign_request
from kyso.app import SERVICES_KEY, create_app
from kyso.config import Settings
from signer import edxml, xml_signing
from signer.report import SubIndication

from .conftest import PASSPHRASE, KysoEnv
from .exchangetools import (
    HUNG_DUNG,
    VINH,
    ExchangeEnv,
    clone_env,
    package_bytes,
    signed_package,
)
from .foreignca import ForeignCA

SENDER, RECIPIENT = Principal(Role.AGENCY, HUNG_DUNG), Principal(Role.AGENCY, VINH)


@pytest.fixture(scope="module")
def env(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeEnv]:
    env, cleanup = clone_env(kyso_env, tmp_path_factory.mktemp("pending"))
    yield env
    cleanup()


def open_app(env: ExchangeEnv, **extra: str) -> Flask:
    """The real app in this process, over ``env``'s database (a new one each call: as after a
    restart), its worker not started."""
    settings = {**env.env, "KYSO_EXCHANGE_WORKER": "0", "KYSO_VERIFY_BASE_DELAY": "0", **extra}
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("KYSO_")]:
            patch.delenv(name)
        for name, value in settings.items():
            patch.setenv(name, value)
        return create_app(Settings.load(), PASSPHRASE.encode())


def open_relay(env: ExchangeEnv, **extra: str) -> Exchange:
    """The relay of :func:`open_app`."""
    exchange: Exchange = open_app(env, **extra).extensions[SERVICES_KEY].exchange
    return exchange


@pytest.fixture(scope="module")
def relay(env: ExchangeEnv) -> Exchange:
    return open_relay(env)


class Responder:
    """The package verification's outcome: the real one, or forced to ``sub``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sub: SubIndication | None = SubIndication.TRY_LATER
        verify = xml_signing.verify_package

        def steered(document: Any, policy: Any, name: str = "package.xml") -> Any:
            verification = verify(document, policy, name)
            if self.sub is None:
                return verification
            [signature] = verification.report.signatures
            forced = signature.finished(self.sub).noted(f"forced {self.sub} in the test")
            report = dataclasses.replace(verification.report, signatures=(forced,))
            return dataclasses.replace(verification, report=report)

        monkeypatch.setattr(xml_signing, "verify_package", steered)


@pytest.fixture
def responder(monkeypatch: pytest.MonkeyPatch) -> Responder:
    return Responder(monkeypatch)


def inbox_messages(relay: Exchange, message_id: str) -> list[int]:
    """The recipient's inbox items of this message (kind message)."""
    page = relay.mailbox.inbox(RECIPIENT, limit=500)
    return [
        i.delivery.id
        for i in page.items
        if i.message.id == message_id and i.delivery.kind == "message"
    ]


def sender_statuses(relay: Exchange, message_id: str) -> list[edxml.StatusMessage]:
    """The relay's statuses owed to the sender about this message."""
    page = relay.mailbox.inbox(SENDER, limit=500)
    return [
        edxml.parse_status(i.status.xml)
        for i in page.items
        if i.message.id == message_id and i.status is not None
    ]


def audited(relay: Exchange, message_id: str) -> list[str]:
    with relay.relay.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.event)
            .where(audit_log.c.subject == message_id)
            .order_by(audit_log.c.seq)
        ).all()
    return [r.event for r in rows]


def hold(env: ExchangeEnv, relay: Exchange) -> str:
    """Send a package while the responder is unreachable; the held message's id."""
    accepted = relay.relay.accept(SENDER, signed_package(env, HUNG_DUNG, [VINH]))
    assert accepted.created and accepted.receipt_xml  # the signed receipt, at once
    assert accepted.message.verification == PENDING
    return accepted.message.id


def test_a_package_awaiting_revocation_is_held_with_its_receipt(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    message_id = hold(env, relay)

    assert inbox_messages(relay, message_id) == []
    assert [m.message.id for m in relay.messages.received(RECIPIENT)].count(message_id) == 0
    view = relay.messages.view(SENDER, message_id)
    assert view.message.verification == PENDING and view.recipients == []
    assert [
        s.message.verification for s in relay.messages.outbox(SENDER) if s.message.id == message_id
    ] == [PENDING]
    assert events.VERIFICATION_PENDING in audited(relay, message_id)

    # Still unreachable: still held, nothing delivered.
    assert relay.pending.run_once().waiting >= 1
    assert inbox_messages(relay, message_id) == []
    assert relay.messages.view(SENDER, message_id).message.verification == PENDING


def test_a_retry_that_passes_delivers_once(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    message_id = hold(env, relay)
    stale = relay.pending.store.pending(message_id)  # as a worker whose lease ran out read it
    assert stale is not None
    responder.sub = None  # the responder answers again: good

    assert relay.pending.run_once().delivered >= 1
    assert relay.pending.run_once().delivered == 0  # decided: not again
    relay.pending._attempt(stale, PendingResult())  # the late worker decides nothing

    assert len(inbox_messages(relay, message_id)) == 1
    assert relay.messages.view(SENDER, message_id).message.verification == VERIFIED
    [status] = sender_statuses(relay, message_id)
    assert status.code is edxml.StatusCode.ARRIVED
    assert events.VERIFIED in audited(relay, message_id)
    assert relay.pending.store.pending(message_id) is None
    assert all(check.ok for check in checked_trail(env, relay, message_id))


def checked_trail(env: ExchangeEnv, relay: Exchange, message_id: str) -> list[Check]:
    """The sender's trail checked as `kyso trail --verify` checks it: the receipt, and the
    relay's status signed by the relay (no agency's seal)."""
    found = views.trail(relay.trail.message_trail(SENDER, message_id))
    signed = {
        views.status_href(message_id, s.id): relay.messages.status_xml(SENDER, message_id, s.id)
        for s in relay.trail.message_trail(SENDER, message_id).statuses
    }
    signed[f"{views.message_href(message_id)}/receipt"] = relay.messages.receipt(SENDER, message_id)
    assert [e["from"] for e in found["trail"]] == ["relay", "relay"]
    return verify_trail(SimpleNamespace(download=signed.__getitem__), found, env.policy())  # type: ignore[arg-type]


def test_a_retry_that_finds_it_revoked_refuses_it(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    message_id = hold(env, relay)
    responder.sub = SubIndication.REVOKED

    assert relay.pending.run_once().refused >= 1
    responder.sub = None  # a later pass changes nothing: it was decided
    relay.pending.run_once()

    assert inbox_messages(relay, message_id) == []
    assert relay.messages.view(SENDER, message_id).message.verification == REFUSED
    [status] = sender_statuses(relay, message_id)
    assert status.code is edxml.StatusCode.REFUSED and "revoked" in status.description
    assert events.VERIFICATION_REFUSED in audited(relay, message_id)
    with pytest.raises(InvalidTransition):  # a refused package has no lifecycle
        relay.statuses._check(status, relay.messages.view(SENDER, message_id).message, HUNG_DUNG)


def test_a_held_package_survives_a_restart(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    message_id = hold(env, relay)
    responder.sub = None

    restarted = open_relay(env)
    assert restarted.pending.run_once().delivered >= 1
    assert len(inbox_messages(restarted, message_id)) == 1
    assert [s.code for s in sender_statuses(restarted, message_id)] == [edxml.StatusCode.ARRIVED]


def test_on_postgresql_a_held_package_is_delivered_once_after_a_restart(
    kyso_env: KysoEnv, tmp_path: Path, responder: Responder
) -> None:
    env, drop = clone_env(kyso_env, tmp_path / "pg", backend="postgresql")
    try:
        message_id = hold(env, open_relay(env))
        responder.sub = None
        first, second = open_relay(env), open_relay(env)  # two workers over one database
        decided = first.pending.run_once().delivered + second.pending.run_once().delivered
        assert decided == 1
        assert len(inbox_messages(second, message_id)) == 1
        assert [s.code for s in sender_statuses(first, message_id)] == [edxml.StatusCode.ARRIVED]
    finally:
        drop()


def test_a_package_waits_only_so_long(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    impatient = open_relay(env, KYSO_VERIFY_GIVE_UP="0")
    message_id = hold(env, impatient)

    assert impatient.pending.run_once().refused >= 1
    [status] = sender_statuses(impatient, message_id)
    assert status.code is edxml.StatusCode.REFUSED
    assert "revocation information is unavailable" in status.description
    assert inbox_messages(impatient, message_id) == []


def test_the_refuse_policy_refuses_at_once(env: ExchangeEnv, responder: Responder) -> None:
    strict = open_relay(env, KYSO_UNREACHABLE_RESPONDER="refuse")
    with pytest.raises(SignatureRejected, match="TRY_LATER"):
        strict.relay.accept(SENDER, signed_package(env, HUNG_DUNG, [VINH]))


def test_a_hard_failure_is_refused_at_once(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    responder.sub = SubIndication.REVOKED
    with pytest.raises(Exception, match="revoked"):
        relay.relay.accept(SENDER, signed_package(env, HUNG_DUNG, [VINH]))


def test_the_api_says_the_package_is_held(env: ExchangeEnv, responder: Responder) -> None:
    client, credential = open_app(env).test_client(), env.credential(HUNG_DUNG)

    def authorized(method: str, path: str, body: bytes = b"") -> dict[str, str]:
        header = sign_request(credential.key_id, credential.secret, method, path, "", body)
        return {"Authorization": header, "Content-Type": "application/xml"}

    body = signed_package(env, HUNG_DUNG, [VINH])
    sent = client.post(
        "/api/v1/messages", data=body, headers=authorized("POST", "/api/v1/messages", body)
    )
    assert sent.status_code == 201, sent.get_data(as_text=True)
    assert sent.headers["X-Kyso-Verification"] == PENDING
    path = f"/api/v1/messages/{sent.headers['X-Kyso-Message-Id']}"
    assert client.get(path, headers=authorized("GET", path)).json["verification"] == PENDING


def test_the_views_name_the_verification(
    env: ExchangeEnv, relay: Exchange, responder: Responder
) -> None:
    message_id = hold(env, relay)
    view = views.message(relay.messages.view(SENDER, message_id))
    [sent] = [views.sent(s) for s in relay.messages.outbox(SENDER) if s.message.id == message_id]
    assert view["verification"] == sent["verification"] == PENDING
    json.dumps(view)


# --- end to end with a foreign CA whose responders stop and come back ---------------------------


def foreign_relay(kyso_env: KysoEnv, folder: Path, ca: ForeignCA) -> tuple[Exchange, Any]:
    """A relay of its own that trusts ``ca`` (`kyso trust add`) and checks its chains online
    (loopback allowed), with ``ca``'s seal registered to the sender (`kyso directory
    certificate add`): the production wiring, as an admin sets it up. Its clean-up too."""
    allow = "*, 127.0.0.0/8"
    env, cleanup = clone_env(kyso_env, folder, KYSO_REVOCATION_ALLOW=allow)
    env.kyso("trust", "add", "gov-root", str(ca.directory / "root.pem"))
    env.kyso("trust", "add", "gov-issuing", str(ca.directory / "issuing.pem"))
    env.kyso("directory", "certificate", "add", HUNG_DUNG, str(ca.directory / "seal.pem"))
    return open_relay(env, KYSO_REVOCATION_ALLOW=allow), cleanup


@pytest.mark.system  # `kyso trust add`, `kyso directory certificate add`; openssl ocsp
@pytest.mark.parametrize("revoked_meanwhile", [False, True], ids=["good", "revoked"])
def test_with_both_responders_stopped_the_package_waits_then_is_decided_once(
    env: ExchangeEnv,
    kyso_env: KysoEnv,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    revoked_meanwhile: bool,
) -> None:
    ca = ForeignCA.create(tmp_path / "foreign", root_crl=True)
    ca.issue("seal", "So Y Te Nghe An")
    ca.openssl(
        "pkcs12", "-export", "-in", "seal.pem", "-inkey", "seal.key", "-certfile", "issuing.pem",
        "-out", "seal.p12", "-passout", f"pass:{PASSPHRASE}",
    )  # fmt: skip
    relay, cleanup = foreign_relay(kyso_env, tmp_path / "kyso", ca)
    request.addfinalizer(cleanup)
    with open_key(f"p12:{tmp_path / 'foreign' / 'seal.p12'}", PASSPHRASE.encode()) as key:
        package = xml_signing.sign_xml(package_bytes(env, HUNG_DUNG, [VINH]), key)
    try:
        ca.stop()  # neither OCSP nor CRL answers: revocation is unavailable, a network problem
        accepted = relay.relay.accept(SENDER, package)
        message_id = accepted.message.id
        assert accepted.message.verification == PENDING and accepted.receipt_xml
        assert relay.pending.run_once().waiting >= 1
        assert inbox_messages(relay, message_id) == []  # nothing delivered unverified
        assert relay.pending.store.pending(message_id) is not None  # nor refused

        if revoked_meanwhile:
            ca.revoke("seal")  # the responder, started below, reads the index then
        ca.start_ocsp()
        ca.start_crl()
        relay.pending.run_once()
        relay.pending.run_once()
    finally:
        ca.stop()
    statuses = sender_statuses(relay, message_id)
    verification = relay.messages.view(SENDER, message_id).message.verification
    if revoked_meanwhile:
        assert inbox_messages(relay, message_id) == []
        assert verification == REFUSED
        [status] = statuses
        assert status.code is edxml.StatusCode.REFUSED and "revoked" in status.description
    else:
        assert len(inbox_messages(relay, message_id)) == 1
        assert verification == VERIFIED
        assert [s.code for s in statuses] == [edxml.StatusCode.ARRIVED]
