"""`kyso credentials`: one group for every kind; `kyso tokens`, `kyso agency` answer as before."""

from __future__ import annotations

import json

import pytest

from .conftest import KysoEnv

pytestmark = pytest.mark.system  # every test runs `kyso` in a subprocess

PROVINCE = "000.00.00.H41"
SEAL = f"seal-{PROVINCE}"


def _rows(env: KysoEnv, *args: str) -> dict[str, list[str]]:
    """`kyso credentials list` (tab-separated when piped) by credential id."""
    lines = env.kyso("credentials", "list", *args).stdout.strip().splitlines()
    assert lines[0].split("\t") == [
        "id", "kind", "role", "agency", "label", "created", "last used", "status",
    ]  # fmt: skip
    return {line.split("\t")[0]: line.split("\t") for line in lines[1:]}


def test_issue_list_and_revoke_every_kind(kyso_env: KysoEnv) -> None:
    env = kyso_env
    issued = env.kyso(
        "credentials", "issue", "--kind", "bearer", "--agency", PROVINCE, "--key", SEAL,
        "--label", "iOffice (cli)",
    ).stdout.splitlines()  # fmt: skip
    token_id, secret = issued[0].split()[1], issued[-1]
    assert issued[0].startswith(f"token {token_id} for {PROVINCE}") and secret.startswith("kyso_")
    out = env.data / "key.json"
    env.kyso("credentials", "issue", "--kind", "hmac", "--agency", PROVINCE, "--out", str(out))
    key_id = json.loads(out.read_text())["key_id"]

    listed = _rows(env)
    assert listed[token_id][1:5] == ["bearer", "agency", PROVINCE, "iOffice (cli)"]
    assert listed[key_id][1:4] == ["hmac", "agency", PROVINCE]
    assert {listed[token_id][-1], listed[key_id][-1]} == {"active"}

    env.kyso("credentials", "revoke", token_id)
    env.kyso("credentials", "revoke", key_id)
    active = _rows(env)
    assert token_id not in active and key_id not in active  # only the active ones by default
    everything = _rows(env, "--all")
    assert everything[token_id][-1] == everything[key_id][-1] == "revoked"
    assert set(_rows(env, "--all", "--kind", "hmac")) >= {key_id}
    assert token_id not in _rows(env, "--all", "--kind", "hmac")

    # The older groups see the same table, and say what they always said.
    tokens = env.kyso("tokens", "list").stdout
    assert token_id in tokens and "revoked" in tokens
    agency = env.kyso("agency", "list").stdout
    assert key_id in agency and token_id not in agency


def test_wrong_options_and_unknown_ids_are_one_line_errors(kyso_env: KysoEnv) -> None:
    for args in (
        ("issue", "--kind", "bearer", "--agency", PROVINCE),  # no key
        ("issue", "--kind", "hmac", "--agency", PROVINCE, "--key", SEAL),
        ("issue", "--kind", "certificate"),  # no serial
        ("issue", "--kind", "certificate", "--serial", "zz"),
    ):
        result = kyso_env.kyso("credentials", *args, check=False)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    unknown = kyso_env.kyso("credentials", "revoke", "ak_" + "0" * 16, check=False)
    assert unknown.returncode == 2 and unknown.stderr == f"error: no credential ak_{'0' * 16}\n"
    not_an_agencys = kyso_env.kyso(
        "credentials", "issue", "--kind", "certificate", "--serial", "1", check=False
    )
    assert not_an_agencys.returncode == 2
    assert "is not one the PKI issued to an agency" in not_an_agencys.stderr
