"""The trust store (certs/truststore.py, certs/trust_anchors.py) and `kyso trust list|add|remove`:
named roots and intermediates, each change in the audit log, Kyso's own CA one entry among them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from certs.trust_anchors import (
    LOCAL_ISSUING_NAME,
    LOCAL_ROOT_NAME,
    NotACertificateAuthority,
    TrustAnchorExists,
    TrustAnchorStore,
    UnknownTrustAnchor,
)
from certs.truststore import AnchorRole, TrustSet, fingerprint, load_one_certificate
from kyso.db import make_engine, upgrade

from .conftest import KysoEnv, free_port
from .exchangetools import audit_log_about
from .foreignca import ForeignCA, foreign_ca


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ForeignCA:
    made = ForeignCA.create(tmp_path_factory.mktemp("foreign") / "ca")
    made.issue("alice", "Nguyen Van An")
    return made  # no servers: only its certificates are used here


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'kyso.sqlite'}")
    upgrade(made)
    yield made
    made.dispose()


def test_roles_come_from_the_certificates(ca: ForeignCA, engine: sa.Engine) -> None:
    store = TrustAnchorStore(engine)
    assert store.add("foreign-root", ca.root).anchor.role is AnchorRole.ROOT
    assert store.add("foreign-issuing", ca.issuing).anchor.role is AnchorRole.INTERMEDIATE
    trusted = store.trust_set()
    assert trusted.roots == (ca.root,) and trusted.intermediates == (ca.issuing,)
    assert trusted.issuer_of(ca.certificate("alice")) == ca.issuing
    assert trusted.named(ca.issuing).name == "foreign-issuing"  # type: ignore[union-attr]
    assert trusted.named(ca.certificate("alice")) is None
    path = trusted.anchor_path(ca.certificate("alice"))
    assert [a.name for a in path or ()] == ["foreign-issuing", "foreign-root"]
    store.remove("foreign-issuing")  # the chain is broken: the root alone did not issue alice
    assert store.trust_set().anchor_path(ca.certificate("alice")) is None
    assert [a.name for a in store.trust_set().anchor_path(ca.issuing) or ()] == ["foreign-root"]


def test_an_intermediate_can_be_made_an_anchor(ca: ForeignCA, engine: sa.Engine) -> None:
    """Trusting one sub-CA of a national root, not everything under that root."""
    store = TrustAnchorStore(engine)
    store.add("gov-ca", ca.issuing, AnchorRole.ROOT)
    assert store.trust_set().roots == (ca.issuing,)


def test_what_is_refused(ca: ForeignCA, engine: sa.Engine) -> None:
    store = TrustAnchorStore(engine)
    store.add("foreign-root", ca.root)
    with pytest.raises(TrustAnchorExists, match="foreign-root"):
        store.add("again", ca.root)  # the same certificate under another name
    with pytest.raises(TrustAnchorExists):
        store.add("foreign-root", ca.issuing)
    with pytest.raises(NotACertificateAuthority):
        store.add("alice", ca.certificate("alice"))
    with pytest.raises(UnknownTrustAnchor):
        store.remove("nobody")
    assert [s.anchor.name for s in store.all()] == ["foreign-root"]


def test_an_entry_is_trusted_only_within_its_validity(ca: ForeignCA, engine: sa.Engine) -> None:
    store = TrustAnchorStore(engine)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    store.add("foreign-root", ca.root, trusted_until=until)
    assert store.trust_set().roots == (ca.root,)
    assert store.trust_set(until + dt.timedelta(seconds=1)).roots == ()
    assert store.trust_set(ca.root.not_valid_before_utc - dt.timedelta(days=1)).roots == ()


def test_a_trust_folder_is_a_trust_set_too(ca: ForeignCA) -> None:
    trusted = TrustSet.from_path(ca.directory / "root.pem")
    assert trusted.roots == (ca.root,) and trusted.anchors[0].name == "root.pem#1"


# --- kyso trust ---------------------------------------------------------------------------------


def test_kyso_trust_add_list_remove_is_audited(ca: ForeignCA, tmp_path: Path) -> None:
    env = KysoEnv(tmp_path / "data", free_port())  # no PKI of its own: nothing trusted yet
    assert env.kyso("trust", "list").stdout.strip().splitlines()[1:] == []

    added = env.kyso("trust", "add", "foreign-root", str(ca.directory / "root.pem"))
    assert fingerprint(ca.root) in added.stdout
    env.kyso("trust", "add", "foreign-issuing", str(ca.directory / "issuing.pem"))
    listed = [line.split("\t") for line in env.kyso("trust", "list").stdout.splitlines()[1:]]
    assert [(row[0], row[1], row[5]) for row in listed] == [
        ("foreign-issuing", "intermediate", "trusted"),
        ("foreign-root", "root", "trusted"),
    ]

    refused = env.kyso("trust", "add", "alice", str(ca.directory / "alice.pem"), check=False)
    assert refused.returncode == 2 and "not a CA" in refused.stderr
    env.kyso("trust", "remove", "foreign-issuing")
    gone = env.kyso("trust", "remove", "foreign-issuing", check=False)
    assert gone.returncode == 2 and "no trust entry is named" in gone.stderr

    events = audit_log_about(env.data, "trust:")
    assert [(e["event"], e["subject"], e["data"]["change"]) for e in events] == [  # type: ignore[index]
        ("admin", "trust:foreign-root", "trust-anchor-added"),
        ("admin", "trust:foreign-issuing", "trust-anchor-added"),
        ("admin", "trust:foreign-issuing", "trust-anchor-removed"),
    ]
    assert events[0]["data"]["fingerprint"] == fingerprint(ca.root)  # type: ignore[index]
    assert str(events[0]["actor"]).startswith("cli:")


def test_kyso_trust_add_until_a_day(ca: ForeignCA, tmp_path: Path) -> None:
    env = KysoEnv(tmp_path / "data", free_port())
    env.kyso("trust", "add", "old-root", str(ca.directory / "root.pem"), "--until", "2020-01-01")
    row = env.kyso("trust", "list").stdout.splitlines()[1].split("\t")
    assert (row[0], row[4], row[5]) == ("old-root", "2020-01-01", "expired")


def test_kyso_trust_check_names_the_ca_and_checks_revocation(tmp_path: Path) -> None:
    env = KysoEnv(tmp_path / "data", free_port())
    with foreign_ca(tmp_path / "live-ca", alice="Nguyen Van An") as live:
        alice = str(live.directory / "alice.pem")
        untrusted = env.kyso("trust", "check", alice, check=False)
        assert untrusted.returncode == 1 and "not trusted" in untrusted.stdout
        env.kyso("trust", "add", "foreign-root", str(live.directory / "root.pem"))
        env.kyso("trust", "add", "foreign-issuing", str(live.directory / "issuing.pem"))

        refused = env.kyso("trust", "check", alice, check=False)  # loopback: not allowed
        assert refused.returncode == 1 and "refused by the egress policy" in refused.stdout
        allowed = {**env.env, "KYSO_REVOCATION_ALLOW": "*, 127.0.0.0/8"}
        good = env.kyso("trust", "check", alice, env=allowed)
        assert "issued under foreign-issuing (intermediate) ← foreign-root (root)" in good.stdout
        assert f"good (ocsp {live.ocsp_url})" in good.stdout

        live.revoke("alice")
        live.restart_ocsp()
        revoked = env.kyso("trust", "check", alice, env=allowed, check=False)
        assert revoked.returncode == 1 and "REVOKED at" in revoked.stdout
        assert "key_compromise" in revoked.stdout


def test_pki_init_trusts_kysos_own_ca_as_an_entry(kyso_env: KysoEnv) -> None:
    rows = [line.split("\t") for line in kyso_env.kyso("trust", "list").stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [
        (LOCAL_ISSUING_NAME, "intermediate"),
        (LOCAL_ROOT_NAME, "root"),
    ]
    root = load_one_certificate(kyso_env.root)
    assert rows[1][6] == fingerprint(root)[:16]
    again = kyso_env.kyso("trust", "add", "--local-pki")
    assert "trusted already" in again.stdout
