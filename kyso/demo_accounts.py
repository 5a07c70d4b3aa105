"""Demo accounts and a demo API token, so `make run` can be tried at once.

The token, like every API token, holds the province's seal only: Nguyễn Văn An's personal
signature is made by him, signed in on the web pages.

One password for every demo account and the province's API token are generated on first use
into ``DATA/secrets/demo-password`` and ``DATA/secrets/demo-api-token`` (mode 0600); ``kyso
serve`` and ``kyso demo init`` print where they are, never the secrets. Running this again adds
what is missing and changes nothing else; a new password file (e.g. a database copied without
its secrets) resets the demo accounts to it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from certs.layout import slug

from .accounts import KEY_KINDS, Account, AccountStore, Role
from .identities import Identities
from .secrets import read_secret, write_secret
from .tokens import TokenStore, check_token_keys

PROVINCE = "000.00.00.H41"
PASSWORD_FILE = "demo-password"  # noqa: S105 - a file name
TOKEN_FILE = "demo-api-token"  # noqa: S105 - a file name


@dataclass(frozen=True)
class DemoAccount:
    username: str
    full_name: str
    role: Role
    agency: str | None
    keys: tuple[str, ...]  # short key names (see kyso.identities.key_name)


def _person(name: str) -> str:
    return f"person-{slug(name)}"


def _seal(agency: str) -> str:
    return f"seal-{agency}"


DEMO_TOKEN_KEYS = (_seal(PROVINCE),)

DEMO_ACCOUNTS = (
    DemoAccount("an", "Nguyễn Văn An", Role.OFFICER, PROVINCE,
                (_person("Nguyễn Văn An"), _seal(PROVINCE))),
    DemoAccount("lan", "Hoàng Thị Lan", Role.CLERK, PROVINCE, (_seal(PROVINCE),)),
    DemoAccount("binh", "Trần Thị Bình", Role.OFFICER, "000.00.02.H41",
                (_person("Trần Thị Bình"), _seal("000.00.02.H41"))),
    DemoAccount("khoa", "Đỗ Minh Khoa", Role.AUDITOR, None, ()),
    DemoAccount("admin", "Quản trị hệ thống", Role.ADMIN, None, ()),
)  # fmt: skip


@dataclass(frozen=True)
class DemoSetup:
    password: str
    token: str | None
    accounts: tuple[Account, ...]


def _key_refs(
    identities: Identities, agency: str | None, names: tuple[str, ...]
) -> tuple[str, ...]:
    """The references of ``agency``'s current keys called ``names`` (those that exist)."""
    if agency is None:
        return ()
    by_name = {i.name: i.key_ref for i in identities.of_agency(agency) if not i.revoked}
    return tuple(by_name[name] for name in names if name in by_name)


def create_demo_accounts(
    accounts: AccountStore, tokens: TokenStore, identities: Identities, secrets_dir: Path
) -> DemoSetup:
    """Add the demo accounts and the province's token where missing."""
    password_file = secrets_dir / PASSWORD_FILE
    password = read_secret(password_file)
    new_password = password is None
    if password is None:
        password = secrets.token_urlsafe(12)
        write_secret(password_file, password)
    for spec in DEMO_ACCOUNTS:
        if accounts.find(spec.username) is not None:
            if new_password:  # the file is where `kyso serve` sends people: keep it true
                accounts.set_password(spec.username, password)
            continue
        refs = _key_refs(identities, spec.agency, spec.keys)
        if spec.agency is not None:
            identities.check_grant(spec.agency, list(refs), KEY_KINDS[spec.role])
        accounts.add(spec.username, spec.full_name, spec.role, password, spec.agency, refs)
    token_file = secrets_dir / TOKEN_FILE
    token = read_secret(token_file)
    if token is None:
        refs = _key_refs(identities, PROVINCE, DEMO_TOKEN_KEYS)
        if refs:
            check_token_keys(identities, PROVINCE, list(refs))
            _, token = tokens.create(PROVINCE, refs, "demo: UBND tỉnh Nghệ An")
            write_secret(token_file, token)
    demo = tuple(a for a in (accounts.find(s.username) for s in DEMO_ACCOUNTS) if a is not None)
    return DemoSetup(password, token, demo)
