"""The `kyso` console script: quiet other libraries' warnings, patch them, then run the CLI.

The filters are installed here, before the CLI module imports pyHanko and the server, because
several libraries warn while they are being imported (cryptography's "DSA is deprecated" when
pyHanko imports `DSAPrivateKey`), and a user of `kyso` can act on none of them.
"""

from __future__ import annotations

from .quiet import quiet_third_party_warnings


def install_library_patches() -> None:
    """:func:`certs.patches.install`, imported only now: it loads asn1crypto and pyHanko."""
    from certs import patches

    patches.install()


def main() -> None:
    quiet_third_party_warnings()
    from .cli import main as cli

    # Before a command runs, not for `--help` or a usage error (see kyso.cli_common.KysoCommand).
    cli.before_commands(install_library_patches)
    cli()
