"""The `kyso` command line: one entry point for the PKI, the directory and the server.

User errors (bad input, wrong passphrase, unknown agency…) print one line and exit with 2;
only bugs show a traceback.

Each command lives in a ``kyso/cli_*`` module imported only when that command is used:
``kyso --help`` lists them from :data:`COMMANDS` (name, place, one-line help) and imports
none. A new command is added there; tests/test_cli.py checks the help given here against the
command's own.
"""

from __future__ import annotations

import click

from .cli_common import Context, KysoGroup, Lazy
from .config import Settings

COMMANDS = {
    "accounts": Lazy(
        "kyso.cli_accounts:accounts", "Accounts of the web pages (officer, clerk, auditor, admin)."
    ),
    "agency": Lazy(
        "kyso.cli_exchange:agency_group", "Agency systems' credentials for the exchange relay."
    ),
    "audit": Lazy("kyso.cli_exchange:audit_group", "The relay's tamper-evident audit log."),
    "credentials": Lazy(
        "kyso.cli_credentials:credentials_group",
        "Credentials of agency systems and relay operators: API tokens, HMAC keys, certificates.",
    ),
    "db": Lazy("kyso.cli_server:db", "The database."),
    "demo": Lazy("kyso.cli_demo:demo", "The demo province, for trying Kyso out."),
    "directory": Lazy("kyso.cli_directory:directory", "The agency directory."),
    "inbox": Lazy(
        "kyso.cli_exchange:inbox",
        "List (and optionally save and acknowledge) the agency's unacknowledged items.",
    ),
    "pki": Lazy("kyso.cli_pki:pki", "The local CA: create it, issue and revoke certificates."),
    "relay": Lazy("kyso.cli_exchange:relay_group", "The relay's deliveries."),
    "send": Lazy(
        "kyso.cli_exchange:send",
        "Build an edXML package from FILES, sign it with the agency's seal, send it.",
    ),
    "serve": Lazy(
        "kyso.cli_server:serve",
        "Serve Kyso (API, web pages, PKI services) with waitress, or gunicorn for --workers > 1.",
    ),
    "sign": Lazy(
        "kyso.cli_sign:sign",
        "Sign a document: PDF (PAdES), XML (XAdES) or any file (CAdES, detached).",
    ),
    "status": Lazy("kyso.cli_exchange:status", "Sign and send a status message about MESSAGE_ID."),
    "tokens": Lazy("kyso.cli_accounts:tokens", "API tokens of agency systems."),
    "trail": Lazy(
        "kyso.cli_exchange:trail",
        "Show a message's signed lifecycle: the relay's receipt, then every status.",
    ),
    "trust": Lazy("kyso.cli_trust:trust", "The CAs Kyso trusts: trust roots and intermediates."),
    "verify": Lazy(
        "kyso.cli_pdf:verify_command",
        "Validate every signature of DOCUMENT (PDF, XML, or .p7s with --content).",
    ),
}


@click.group(cls=KysoGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
# Without the option, Settings.load reads KYSO_DATA / KYSO_DB (kyso/config.py).
@click.option("--data", help="Data directory (default: $KYSO_DATA, else var).")
@click.option("--db", help="Database URL (default: $KYSO_DB, else SQLite under --data).")
@click.version_option(package_name="kyso")
@click.pass_context
def main(ctx: click.Context, data: str | None, db: str | None) -> None:
    """Kyso: digital signatures and document exchange for local government."""
    ctx.obj = Context(Settings.load(data=data, db=db))
