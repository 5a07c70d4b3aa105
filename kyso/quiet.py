"""Other libraries' deprecation warnings, kept from Kyso's users (the CLI and the app factory)."""

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
