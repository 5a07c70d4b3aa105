"""The relay's pure parts: routing rules, the status lifecycle, the audit chain, content-addressed
files, request signatures and push backoff (no server, no PKI)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from directory import Agency, Directory, DirectoryError, load_directory
from directory.store import AgencyStore
from exchange import lifecycle
from exchange.audit import AuditLog, checkpoint_imprint, row_hash, verify_chain
from exchange.auth import Authenticator, Role
from exchange.blobs import BlobMissing, BlobStore
from exchange.delivery import backoff
from exchange.errors import (
    Forbidden,
    InvalidTransition,
    Refusal,
    RoutingDenied,
    Unauthenticated,
    UnknownRecipient,
)
from exchange.routing import load_rules, rules_from_json
from exchange.store import ExchangeStore
from exchange.wire import sign_request
from kyso.config import Settings, relay_config
from kyso.db import make_engine, upgrade
from kyso.errors import InvalidRequest

PROVINCE, DEPT, VINH, NGHI_LOC = "000.00.00.H41", "000.00.02.H41", "000.00.21.H41", "000.00.22.H41"
HUNG_DUNG, HUNG_LOC, NGHI_PHONG = "000.01.21.H41", "000.02.21.H41", "000.01.22.H41"


# --- Routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "recipient", "allowed"),
    [
        (HUNG_DUNG, VINH, True),  # commune → its district
        (VINH, HUNG_DUNG, True),  # district → its commune
        (HUNG_DUNG, PROVINCE, True),  # commune → province
        (PROVINCE, HUNG_DUNG, True),  # province → everyone
        (HUNG_DUNG, NGHI_LOC, False),  # commune → another district
        (HUNG_DUNG, HUNG_LOC, False),  # commune → commune
        (VINH, NGHI_PHONG, False),  # district → another district's commune
        (VINH, NGHI_LOC, True),  # district ↔ district
        (DEPT, PROVINCE, True),
        (DEPT, VINH, True),  # department ↔ district
        (VINH, DEPT, True),
        (DEPT, "000.00.03.H41", False),  # department → department
        (DEPT, HUNG_DUNG, False),  # department → commune
        (VINH, VINH, False),  # nobody sends to itself
    ],
)
def test_the_shipped_routing_rules(sender: str, recipient: str, allowed: bool) -> None:
    directory = load_directory()
    assert load_rules().allows(directory, sender, recipient) is allowed


def test_routing_check_names_unknown_and_denied_recipients() -> None:
    rules, directory = load_rules(), load_directory()
    rules.check(directory, HUNG_DUNG, [VINH, PROVINCE])
    with pytest.raises(UnknownRecipient, match=r"000\.09\.21\.H41"):
        rules.check(directory, HUNG_DUNG, [VINH, "000.09.21.H41"])
    with pytest.raises(RoutingDenied, match=r"commune.*district"):
        rules.check(directory, HUNG_DUNG, [NGHI_LOC])
    reachable = {a.code for a in rules.reachable(directory, HUNG_DUNG)}
    assert reachable == {VINH, PROVINCE}


def test_routing_rules_are_configuration_for_any_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the 2025 reform: province → communes directly, communes talk to each other."""
    tree = Directory(
        (
            Agency("000.00.00.H40", "Tỉnh", "province"),
            Agency("000.00.01.H40", "Xã A", "commune", "000.00.00.H40"),
            Agency("000.00.02.H40", "Xã B", "commune", "000.00.00.H40"),
            Agency("000.01.02.H40", "Thôn", "village", "000.00.02.H40"),
        )
    )
    file = tmp_path / "routing.json"
    file.write_text(
        json.dumps(
            {
                "rules": [
                    {"from": "commune", "to": "province", "relation": "parent"},
                    {"from": "commune", "to": "commune", "relation": "sibling"},
                    {"from": "*", "to": "*", "relation": "same-tree"},
                ],
                "symmetric": False,
            }
        )
    )
    monkeypatch.setenv("KYSO_ROUTING", str(file))
    assert load_rules().source == "exchange/data/routing.json"  # the domain reads no variable
    rules = load_rules(Settings.load().relay.routing_file)
    assert rules.source == str(file)
    assert rules.allows(tree, "000.00.01.H40", "000.00.02.H40")
    assert rules.allows(tree, "000.01.02.H40", "000.00.00.H40")  # same tree
    strict = rules_from_json(
        {"rules": [{"from": "commune", "to": "province", "relation": "parent"}], "symmetric": False}
    )
    assert strict.allows(tree, "000.00.01.H40", "000.00.00.H40")
    assert not strict.allows(tree, "000.00.00.H40", "000.00.01.H40")  # not symmetric
    with pytest.raises(DirectoryError, match="unknown relation"):
        rules_from_json({"rules": [{"from": "a", "to": "b", "relation": "cousin"}]})


# --- The lifecycle -------------------------------------------------------------------------------


def party(state: str | None = None, answer: str | None = None) -> lifecycle.Party:
    return lifecycle.Party(VINH, state, answer)


def step(code: str, state: str | None, answer: str | None = None, **kwargs) -> lifecycle.Transition:
    options = {"recalled": False, "doc_type": 0} | kwargs
    return lifecycle.recipient_transition(code, party(state, answer), HUNG_DUNG, **options)


def test_the_normal_order_and_skipped_steps() -> None:
    state = None
    for code in ("01", "03", "04", "05", "06"):
        transition = step(code, state)
        assert transition.deliver_to == (HUNG_DUNG,) and transition.state == code
        state = code
    assert step("06", "03").state == "06"  # 04 and 05 may be skipped
    assert step("03", None).state == "03"  # so may 01


@pytest.mark.parametrize(
    ("code", "state", "why"),
    [
        ("06", None, "cannot come as the first"),
        ("06", "01", "cannot come after 01"),
        ("03", "03", "cannot come after 03"),
        ("01", "03", "cannot come after 03"),
        ("03", "02", "refused"),
        ("16", "02", "refused"),
        ("05", "06", "cannot come after 06"),
        ("15", "03", "neither"),
    ],
)
def test_out_of_order_statuses_are_refused(code: str, state: str | None, why: str) -> None:
    with pytest.raises(InvalidTransition, match=why):
        step(code, state)


def test_recall_and_answers() -> None:
    parties = [lifecycle.Party(VINH, "02", None), lifecycle.Party(NGHI_LOC, "03", None)]
    recall = lifecycle.sender_transition("13", parties, recalled=False)
    assert recall.recall and recall.deliver_to == (NGHI_LOC,)  # not to who refused
    with pytest.raises(InvalidTransition, match="already recalled"):
        lifecycle.sender_transition("13", parties, recalled=True)
    with pytest.raises(Forbidden):
        lifecycle.sender_transition("03", parties, recalled=False)
    with pytest.raises(InvalidTransition, match="answer 15 or 16 first"):
        step("04", "03", recalled=True)
    assert step("15", "03", recalled=True).answer == "15"
    with pytest.raises(InvalidTransition, match="agreed to the recall"):
        step("04", "03", "15", recalled=True)
    with pytest.raises(InvalidTransition, match="already answered"):
        step("16", "03", "15", doc_type=2)
    assert step("16", None, doc_type=3).answer == "16"  # an update or replacement
    assert step("04", "03", "16", recalled=True).state == "04"  # recall refused: go on


# --- The audit chain -----------------------------------------------------------------------------


@pytest.fixture
def audit_db(tmp_path: Path) -> tuple[sa.Engine, AuditLog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    upgrade(engine)
    AgencyStore(engine).load(load_directory())
    log = AuditLog(ExchangeStore(engine))
    for n in range(1, 11):
        log.record("sent", HUNG_DUNG, f"message-{n}", {"n": n, "text": "Công văn số " + str(n)})
    return engine, log


def raw(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


UNLOCK = ("DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete")


def test_an_intact_chain_verifies(audit_db: tuple[sa.Engine, AuditLog]) -> None:
    _, log = audit_db
    verdict = verify_chain(log)
    assert verdict.ok and verdict.rows == 10 and verdict.head_seq == 10, verdict.problems
    first = log.events(0, 1)[0]
    assert first.prev_hash == "0" * 64
    assert first.hash == row_hash(1, first.at, "sent", HUNG_DUNG, "message-1", first.data, "0" * 64)


def test_the_database_refuses_edits(audit_db: tuple[sa.Engine, AuditLog]) -> None:
    engine, _ = audit_db
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log WHERE seq = 3"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            raw(engine, statement)


def test_an_edited_row_is_named(audit_db: tuple[sa.Engine, AuditLog]) -> None:
    engine, log = audit_db
    raw(engine, *UNLOCK, "UPDATE audit_log SET data = replace(data, '4', '5') WHERE seq = 4")
    verdict = verify_chain(log)
    assert verdict.first_bad_seq == 4 and "row 4 was edited" in verdict.problems[0]


def test_a_deleted_row_is_named(audit_db: tuple[sa.Engine, AuditLog]) -> None:
    engine, log = audit_db
    raw(engine, *UNLOCK, "DELETE FROM audit_log WHERE seq = 6")
    verdict = verify_chain(log)
    assert verdict.first_bad_seq == 6 and "row 6 was deleted" in verdict.problems[0]
    raw(engine, "DELETE FROM audit_log WHERE seq >= 9")  # the tail, too
    assert "row 9–10 was deleted" in " ".join(verify_chain(log).problems)


def test_an_inserted_row_is_named(audit_db: tuple[sa.Engine, AuditLog]) -> None:
    engine, log = audit_db
    last = log.events(9, 1)[0]
    at = "2026-01-01T00:00:00.000000+00:00"
    forged = row_hash(11, at, "sent", "x", "forged", "{}", last.hash)
    raw(
        engine,
        "INSERT INTO audit_log (seq, at, event, actor, subject, data, prev_hash, hash) VALUES "
        f"(11, '{at}', 'sent', 'x', 'forged', '{{}}', '{last.hash}', '{forged}')",
    )
    verdict = verify_chain(log)
    assert verdict.first_bad_seq == 11 and "row 11 was inserted" in verdict.problems[0]


def test_a_rewritten_chain_is_caught_by_its_timestamped_checkpoint(
    audit_db: tuple[sa.Engine, AuditLog],
) -> None:
    engine, log = audit_db
    stamped: dict[bytes, bytes] = {}

    def stamp(digest: bytes) -> bytes:  # a stand-in TSA: remembers what it stamped
        stamped[digest] = b"token:" + digest
        return stamped[digest]

    def check(token: bytes, digest: bytes) -> str | None:
        return None if stamped.get(digest) == token else "not stamped by the TSA"

    checkpoint = log.checkpoint(stamp)
    assert checkpoint is not None and checkpoint.seq == 10
    assert checkpoint.imprint == checkpoint_imprint(10, checkpoint.hash, "0" * 64)
    assert log.checkpoint(stamp) is None  # nothing new
    assert verify_chain(log, check).ok
    # Rewrite row 3 and recompute every hash after it, head included: the chain is
    # consistent again, but row 10 no longer has the hash the TSA stamped.
    raw(engine, *UNLOCK)
    events = log.events(0, 100)
    prev = events[1].hash
    with engine.begin() as conn:
        for event in events[2:]:
            data = event.data.replace("3", "7") if event.seq == 3 else event.data
            digest = row_hash(
                event.seq, event.at, event.event, event.actor, event.subject, data, prev
            )
            conn.execute(
                sa.text("UPDATE audit_log SET data = :d, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"d": data, "p": prev, "h": digest, "s": event.seq},
            )
            prev = digest
        conn.execute(sa.text("UPDATE audit_head SET hash = :h"), {"h": prev})
    verdict = verify_chain(log, check)
    assert not verdict.ok
    assert any("rows up to 10 were rewritten" in p for p in verdict.problems), verdict.problems


# --- Files and request signatures ----------------------------------------------------------------


def test_blobs_are_content_addressed_and_durable(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = "Quyết định số 15".encode() * 1000
    sha = blobs.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.path(sha).read_bytes() == data and blobs.put(data) == sha
    assert blobs.path(sha).relative_to(tmp_path / "blobs").parts[:2] == (sha[:2], sha[2:4])
    assert not list((tmp_path / "blobs" / "tmp").iterdir())  # no temporary file left
    blobs.path(sha).write_bytes(b"changed")
    with pytest.raises(BlobMissing, match="changed on disk"):
        blobs.get(sha, verify=True)
    with pytest.raises(BlobMissing):
        blobs.get("0" * 64)
    with pytest.raises(BlobMissing):
        blobs.path("../../etc/passwd")


class _NoCertificates:
    def find(self, serial: int) -> None:
        return None


def test_request_signatures(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'auth.sqlite'}")
    upgrade(engine)
    AgencyStore(engine).load(load_directory())
    auth = Authenticator(engine, b"k" * 32, _NoCertificates())  # type: ignore[arg-type]
    credential, secret = auth.issue(Role.AGENCY, VINH, "test")
    assert credential.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT secret_sealed FROM credentials WHERE kind = 'hmac'"
        ).scalar()
    assert secret.encode() not in stored  # sealed, never in clear

    body, now = b"<edXML/>", dt.datetime.now(dt.UTC)
    header = sign_request(credential.key_id, secret, "POST", "/api/v1/messages", "", body)
    principal = auth.authenticate_hmac(header, "POST", "/api/v1/messages", "", body)
    assert (principal.agency, principal.role) == (VINH, Role.AGENCY)
    with pytest.raises(Unauthenticated, match="replayed") as replayed:
        auth.authenticate_hmac(header, "POST", "/api/v1/messages", "", body)
    assert replayed.value.reason is Refusal.REPLAYED_NONCE
    fresh = sign_request(credential.key_id, secret, "POST", "/api/v1/messages", "", body)
    for method, path, query, data in [
        ("POST", "/api/v1/messages", "", b"<edXML>changed</edXML>"),
        ("GET", "/api/v1/messages", "", body),
        ("POST", "/api/v1/inbox", "", body),
        ("POST", "/api/v1/messages", "after=1", body),
    ]:
        with pytest.raises(Unauthenticated, match="does not verify") as changed:
            auth.authenticate_hmac(fresh, method, path, query, data)
        assert changed.value.reason is Refusal.BAD_SIGNATURE
    old = sign_request(
        credential.key_id, secret, "GET", "/api/v1/inbox", "", b"", int(now.timestamp()) - 600
    )
    with pytest.raises(Unauthenticated, match="more than 5 minutes") as stale:
        auth.authenticate_hmac(old, "GET", "/api/v1/inbox", "", b"")
    assert stale.value.reason is Refusal.STALE_TIMESTAMP
    wrong = sign_request(credential.key_id, "not the secret", "GET", "/api/v1/inbox", "", b"")
    with pytest.raises(Unauthenticated, match="does not verify"):
        auth.authenticate_hmac(wrong, "GET", "/api/v1/inbox", "", b"")
    auth.revoke(credential.key_id)
    again = sign_request(credential.key_id, secret, "GET", "/api/v1/inbox", "", b"")
    with pytest.raises(Unauthenticated, match="revoked") as revoked:
        auth.authenticate_hmac(again, "GET", "/api/v1/inbox", "", b"")
    assert revoked.value.reason is Refusal.UNKNOWN_KEY
    with pytest.raises(Unauthenticated, match="Kyso-HMAC-SHA256") as bearer:
        auth.authenticate_hmac("Bearer kyso_x", "GET", "/api/v1/inbox", "", b"")
    assert bearer.value.reason is Refusal.MALFORMED


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [backoff(n, 1.0, 60.0, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        full = min(60.0, 2 ** (n - 1))
        assert full / 2 <= delay <= full
    assert delays[-1] <= 60 and len({round(d, 6) for d in delays}) == len(delays)


def test_trusted_proxy_networks_from_the_environment() -> None:
    from exchange.auth import from_networks

    default = relay_config({}).client_cert_proxies
    assert from_networks("127.0.0.1", default) and from_networks("::1", default)
    assert not from_networks("10.0.0.1", default) and not from_networks(None, default)
    assert not from_networks("not an address", default)
    chosen = relay_config({"KYSO_CLIENT_CERT_PROXIES": "10.0.0.5, 10.1.0.0/16"})
    assert from_networks("10.1.2.3", chosen.client_cert_proxies)
    assert from_networks("10.0.0.5", chosen.client_cert_proxies)
    assert not from_networks("127.0.0.1", chosen.client_cert_proxies)
    with pytest.raises(InvalidRequest, match="KYSO_CLIENT_CERT_PROXIES"):
        relay_config({"KYSO_CLIENT_CERT_PROXIES": "10.0.0.300"})
