"""The `kyso` console script: quiet other libraries' warnings, patch them, then run the CLI.

The filters are installed here, before the CLI module imports pyHanko and the server, because
several libraries warn while they are being imported (cryptography's "DSA is deprecated" when
pyHanko imports `DSAPrivateKey`), and a user of `kyso` can act on none of them.
"""

from __future__ import annotations

import warnings

# Kyso's own packages: their warnings stay visible (and are errors under the test suite).
OWN_PACKAGES = ("kyso", "signer", "certs", "exchange", "directory", "bench")
_NOT_OURS = rf"(?!(?:{'|'.join(OWN_PACKAGES)})(?:\.|$))"


def quiet_third_party_warnings() -> None:
    """Ignore deprecation warnings attributed to modules outside Kyso's own packages.

    A warning is attributed to the module that triggered it (the importer of a deprecated name,
    the caller of a deprecated function), so a deprecation that Kyso's code triggers still shows.
    """
    from cryptography.utils import CryptographyDeprecationWarning

    for category in (DeprecationWarning, PendingDeprecationWarning, CryptographyDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOT_OURS)


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
