"""`kyso demo …`: the demo province, for trying Kyso out."""

from __future__ import annotations

import click
from rich.markup import escape

from .cli_common import Context, KysoGroup, Lazy, console, pass_context


@click.group(
    "demo",
    cls=KysoGroup,
    lazy={
        "exchange": Lazy(
            "kyso.cli_exchange:demo_exchange",
            "Create a relay credential for every demo agency (if missing) under var/secrets/.",
        ),
    },
)
def demo() -> None:
    """The demo province, for trying Kyso out."""


@demo.command("init")
@click.option("--if-missing", is_flag=True, help="Do nothing if the PKI already exists.")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True)
@click.pass_context
def demo_init(ctx: click.Context, if_missing: bool, base_url: str) -> None:
    """Create the demo PKI, directory, accounts and API token under the data directory."""
    from certs.layout import PkiLayout

    from .cli_exchange import demo_exchange
    from .cli_pki import pki_init
    from .secrets import ensure_demo_passphrase_file

    obj: Context = ctx.obj
    if if_missing and PkiLayout(obj.settings.pki_dir).exists():
        console.print(f"demo PKI found in {obj.settings.pki_dir}")
    else:
        ensure_demo_passphrase_file(obj.settings)
        ctx.invoke(pki_init, directory=None, base_url=base_url, directory_file=None)
    ctx.invoke(demo_accounts)
    ctx.invoke(demo_exchange)
    sample = obj.settings.data_dir / "samples" / "quyet-dinh-15.pdf"
    if not sample.exists():
        from .samples import decision_pdf

        sample.parent.mkdir(parents=True, exist_ok=True)
        decision_pdf(sample)
    console.print(f"a sample decision to sign: {sample}")


@demo.command("accounts")
@pass_context
def demo_accounts(obj: Context) -> None:
    """Add the demo accounts (one password) and the province's API token, if missing."""
    from .demo_accounts import PASSWORD_FILE, TOKEN_FILE, create_demo_accounts

    root = obj.root
    setup = create_demo_accounts(
        root.accounts, root.tokens, root.identities, obj.settings.secrets_dir
    )
    secrets_dir = obj.settings.secrets_dir
    console.print(
        f"{len(setup.accounts)} demo accounts; their password is in "
        f"{escape(str(secrets_dir / PASSWORD_FILE))}"
    )
    if setup.token is not None:
        console.print(f"the demo API token is in {escape(str(secrets_dir / TOKEN_FILE))}")
