"""The CLI: help everywhere, one-line errors with exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kyso.cli import main
from kyso.cli_common import KysoCommand, KysoGroup

from .conftest import KYSO, PASSPHRASE, KysoEnv, free_port, start_server

# System tests (the `kyso` command itself, in subprocesses): only `make test` runs them.
pytestmark = pytest.mark.system


def subcommands(group: click.Group) -> list[tuple[str, click.Command]]:
    """A group's commands as click resolves them (importing the lazy ones)."""
    ctx = click.Context(group)
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    return [(name, command) for name, command in found if command is not None]


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in subcommands(group):
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        found = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
        assert found is not None, f"kyso {' '.join(path)}: no command {name}"
        command = found
    return command


@pytest.mark.parametrize("path", all_commands(main), ids=lambda p: " ".join(p) or "kyso")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert resolve(path).help, f"kyso {' '.join(path)} has no help text"


@pytest.mark.parametrize("path", all_commands(main), ids=lambda p: " ".join(p) or "kyso")
def test_every_command_runs_the_entry_points_hooks(path: tuple[str, ...]) -> None:
    """Commands are KysoCommands (they run the hooks, e.g. the library patches, before their
    callback) and groups KysoGroups (user errors in one line, lazy subcommands)."""
    command = resolve(path)
    assert isinstance(command, KysoGroup if isinstance(command, click.Group) else KysoCommand)


def lazy_groups(group: KysoGroup) -> list[KysoGroup]:
    found = [group] if group.lazy else []
    for _, command in subcommands(group):
        if isinstance(command, KysoGroup):
            found += lazy_groups(command)
    return found


@pytest.mark.parametrize("group", lazy_groups(main), ids=lambda g: g.name)
def test_lazy_help_is_each_commands_own(group: KysoGroup) -> None:
    """The names and one-line helps `kyso --help` shows without importing the commands are the
    commands' own, and the list looks the same before and after they are imported."""
    fresh = KysoGroup(group.name, lazy=group.lazy, help=group.help)
    before = fresh.get_help(click.Context(fresh, info_name=group.name))
    for name, lazy in group.lazy.items():
        command = fresh.get_command(click.Context(fresh), name)
        assert command is not None and command.name == name, lazy.target
        assert command.get_short_help_str(10_000) == lazy.help, f"{lazy.target}: help differs"
    assert set(fresh.commands) == set(group.lazy)  # all imported now
    assert fresh.get_help(click.Context(fresh, info_name=group.name)) == before
    assert all(f"  {name} " in before for name in group.lazy)


# Runs the `kyso` entry point in a fresh interpreter, then prints (last line, JSON) the exit
# code, the modules it imported and whether the library patches got installed.
PROBE = """
import json, sys
sys.argv = ["kyso", *sys.argv[1:]]
from kyso.entry import main
try:
    main()
except SystemExit as exit:
    code = exit.code
patches = sys.modules.get("certs.patches")
installed = patches is not None and all(p.installed for p in patches.PATCHES)
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules), "patched": installed}))
"""
HEAVY = ("pyhanko", "asn1crypto", "sqlalchemy", "flask", "rich", "lxml", "certs.patches")


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[str, str, dict]:
    """Stdout before the probe's line, stderr, and what the probe found."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    output, _, last = result.stdout.rstrip().rpartition("\n")
    return output, result.stderr, json.loads(last)


def imported(found: dict, *prefixes: str) -> list[str]:
    return [m for m in found["modules"] if m.startswith(prefixes)]


def test_help_lists_every_command_and_imports_none() -> None:
    output, errors, found = probe("--help")
    assert found["code"] == 0 and errors == ""
    assert imported(found, "kyso.cli_") == ["kyso.cli_common"]
    assert imported(found, *HEAVY) == []
    assert not found["patched"]
    listed = output.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(main.lazy)
    for line in listed:
        name, text = line.split(maxsplit=1)
        assert main.lazy[name].help.startswith(text.removesuffix("...")), line


def test_a_commands_help_imports_that_command_only() -> None:
    output, _, found = probe("sign", "pdf", "--help")
    assert found["code"] == 0 and "Usage: kyso sign pdf [OPTIONS] SOURCE" in output
    assert imported(found, "kyso.cli_") == ["kyso.cli_common", "kyso.cli_pdf", "kyso.cli_sign"]
    assert imported(found, "pyhanko", "flask", "sqlalchemy", "certs.patches") == []
    assert not found["patched"]  # --help runs no command


def test_a_command_runs_with_the_library_patches_installed(tmp_path) -> None:
    missing = tmp_path / "absent.pdf"
    env = {**os.environ, "KYSO_DATA": str(tmp_path)}
    _, errors, found = probe("verify", str(missing), env=env)
    assert found["code"] == 2 and f"error: {missing} does not exist" in errors
    assert found["patched"]


def assert_user_error(result, message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]


def test_wrong_passphrase(kyso_env: KysoEnv) -> None:
    env = {**kyso_env.env, "KYSO_PASSPHRASE": "not the passphrase"}
    result = kyso_env.kyso(
        "pki", "issue", "seal", "--agency", "000.00.02.H41", env=env, check=False
    )
    assert_user_error(result, "wrong passphrase")


def test_missing_passphrase_without_terminal(kyso_env: KysoEnv) -> None:
    env = {k: v for k, v in kyso_env.env.items() if k != "KYSO_PASSPHRASE"}
    result = kyso_env.kyso(
        "pki",
        "issue",
        "seal",
        "--agency",
        "000.00.02.H41",
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "no passphrase: set KYSO_PASSPHRASE" in result.stderr


def test_unknown_agency(kyso_env: KysoEnv) -> None:
    result = kyso_env.kyso("pki", "issue", "seal", "--agency", "000.00.99.H41", check=False)
    assert_user_error(result, "unknown agency 000.00.99.H41")


def test_revoke_unknown_serial_bad_serial_and_bad_reason(kyso_env: KysoEnv) -> None:
    assert_user_error(
        kyso_env.kyso("pki", "revoke", "ABCDEF", check=False), "no certificate with serial ABCDEF"
    )
    assert_user_error(
        kyso_env.kyso("pki", "revoke", "not-hex!", check=False), "is not a serial number"
    )
    bad_reason = kyso_env.kyso("pki", "revoke", "ABCDEF", "--reason", "boredom", check=False)
    assert bad_reason.returncode == 2 and "unknown revocation reason 'boredom'" in bad_reason.stderr


def test_issue_then_revoke_twice(kyso_env: KysoEnv) -> None:
    issued = kyso_env.kyso(
        "pki",
        "issue",
        "person",
        "--agency",
        "000.02.22.H41",
        "--name",
        "Đỗ Văn Đức",
        "--title",
        "Công chức",
    )
    serial = issued.stdout.split()[1]
    assert "Đỗ Văn Đức" in issued.stdout
    kyso_env.kyso("pki", "revoke", serial, "--reason", "superseded")
    assert_user_error(kyso_env.kyso("pki", "revoke", serial, check=False), "already revoked")
    listing = kyso_env.kyso("pki", "list", "--agency", "000.02.22.H41").stdout
    assert "revoked (superseded)" in listing


def test_init_refuses_to_overwrite(kyso_env: KysoEnv) -> None:
    result = kyso_env.kyso("pki", "init", check=False)
    assert_user_error(result, "already holds a PKI")


def test_pki_commands_without_a_pki(tmp_path) -> None:
    env = KysoEnv(tmp_path, 1)
    result = env.kyso("pki", "list", check=False)
    assert_user_error(result, "holds no PKI: run `kyso pki init")


def test_directory_show_prints_the_tree(kyso_env: KysoEnv) -> None:
    output = kyso_env.kyso("directory", "show").stdout
    lines = output.splitlines()
    assert lines[0].startswith("000.00.00.H41  UBND tỉnh Nghệ An")
    assert "    000.01.21.H41  UBND phường Hưng Dũng  (commune)" in output


def test_bad_directory_file(kyso_env: KysoEnv, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"agencies": [{"code": "12.34", "name": "X", "level": "province"}]}')
    assert_user_error(
        kyso_env.kyso("directory", "load", str(bad), check=False), "'12.34' is not an agency code"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_to_start_with_a_wrong_passphrase(kyso_env: KysoEnv, workers: str) -> None:
    env = {**kyso_env.env, "KYSO_PASSPHRASE": "wrong"}
    result = kyso_env.kyso("serve", "--port", "1", "--workers", workers, env=env, check=False)
    assert_user_error(result, "wrong passphrase")
    assert "running" not in result.stdout  # refused before announcing anything


def test_pki_init_into_a_chosen_directory(tmp_path) -> None:
    from cryptography import x509

    env = KysoEnv(tmp_path / "data", 1)
    target = tmp_path / "elsewhere"
    env.kyso("pki", "init", "--dir", str(target), "--base-url", "http://pki.nghean.example:8080")
    ca = target / "ca"
    leaf = target / "certs" / "seal-000.00.00.H41.pem"
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca / "root.pem"), "-untrusted",
         str(ca / "issuing.pem"), str(leaf)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stderr
    certificate = x509.load_pem_x509_certificate(leaf.read_bytes())
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    urls = [d.access_location.value for d in aia.value]
    assert "http://pki.nghean.example:8080/pki/ocsp" in urls, urls
    assert not (tmp_path / "data" / "pki").exists()  # the PKI went where --dir said


def test_signing_into_a_place_that_cannot_be_written_is_a_user_error(
    kyso_env: KysoEnv, tmp_path
) -> None:
    from kyso.samples import decision_pdf

    source = decision_pdf(tmp_path / "quyet-dinh.pdf").path
    key = f"p12:{kyso_env.pki / 'keys' / 'seal-000.00.00.H41.p12'}"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    one = kyso_env.kyso("sign", "pdf", str(source), "-o", str(blocker / "signed.pdf"),
                        "--key", key, check=False)  # fmt: skip
    assert_user_error(one, "cannot write into")
    batch = kyso_env.kyso("sign", "pdfs", str(source), "--out-dir", str(blocker / "out"),
                          "--key", key, check=False)  # fmt: skip
    assert_user_error(batch, "cannot write into")


def test_a_batch_with_a_missing_or_twice_named_document_is_refused(
    kyso_env: KysoEnv, tmp_path
) -> None:
    from kyso.samples import decision_pdf

    first = decision_pdf(tmp_path / "quyet-dinh.pdf").path
    (tmp_path / "copy").mkdir()
    second = decision_pdf(tmp_path / "copy" / "quyet-dinh.pdf").path
    key = f"p12:{kyso_env.pki / 'keys' / 'seal-000.00.00.H41.p12'}"
    out = tmp_path / "out"
    missing = kyso_env.kyso("sign", "pdfs", str(first), str(tmp_path / "absent.pdf"),
                            "--out-dir", str(out), "--key", key, check=False)  # fmt: skip
    assert_user_error(missing, "absent.pdf does not exist")
    twice = kyso_env.kyso("sign", "pdfs", str(first), str(second), "--out-dir", str(out),
                          "--key", key, check=False)  # fmt: skip
    assert_user_error(twice, "two documents are named quyet-dinh.pdf")
    assert not out.exists()  # refused before anything was written


def test_help_shows_no_third_party_warning() -> None:
    """Other libraries' deprecation warnings (cryptography's "DSA is deprecated", raised while
    pyHanko is imported) never reach a user of `kyso`, whatever PYTHONWARNINGS says."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [KYSO, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert result.stderr == ""


def test_own_deprecation_warnings_stay_visible() -> None:
    """The filter is by module: a deprecation raised on behalf of Kyso's own code still shows."""
    code = (
        "import warnings\n"
        "from kyso.quiet import quiet_third_party_warnings\n"
        "quiet_third_party_warnings()\n"
        "warnings.warn_explicit('old', DeprecationWarning, 'x.py', 1, module='signer.pdf')\n"
        "warnings.warn_explicit('lib', DeprecationWarning, 'y.py', 1, module='pyhanko.x')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "old" in result.stderr and "lib" not in result.stderr, result.stderr


def test_demo_init_and_serve_say_where_the_secrets_are_never_what(
    kyso_env: KysoEnv, tmp_path: Path
) -> None:
    """A console is a shared terminal, a CI log or a journal: it gets the secrets' files."""
    env = KysoEnv(tmp_path / "demo", free_port())
    env.data.mkdir()
    shutil.copytree(kyso_env.pki, env.pki)
    source, target = (sqlite3.connect(e.data / "kyso.sqlite") for e in (kyso_env, env))
    source.backup(target)
    source.close()
    target.close()
    init = env.kyso("demo", "init", "--if-missing", "--base-url", env.url)
    server = start_server(env)
    server.terminate()
    server.wait(timeout=10)
    banner = (env.data / f"server-{env.port}.log").read_text()

    secrets_dir = env.data / "secrets"
    password_file, token_file = secrets_dir / "demo-password", secrets_dir / "demo-api-token"
    secrets = [
        password_file.read_text().strip(),
        token_file.read_text().strip(),
        PASSPHRASE,
        *(json.loads(f.read_text())["secret"] for f in secrets_dir.glob("agency-*.json")),
    ]
    assert len(secrets) > 5 and all(secrets)
    for output in (banner, init.stdout + init.stderr):
        for secret in secrets:
            assert secret not in output
        assert str(password_file) in output and str(token_file) in output, output
    assert f"Kyso is running on {env.url}" in banner
    assert "an       officer" in banner and "admin" in banner  # the accounts, still
