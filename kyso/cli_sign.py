"""`kyso sign …`: signing from the command line, one format per module (imported when used)."""

from __future__ import annotations

import click

from .cli_common import KysoGroup, Lazy


@click.group(
    "sign",
    cls=KysoGroup,
    lazy={
        "cms": Lazy(
            "kyso.cli_xml:sign_cms",
            "Sign any file with a detached CAdES signature (conventionally IN.p7s).",
        ),
        "pdf": Lazy("kyso.cli_pdf:sign_pdf", "Sign SOURCE (PAdES) into OUTPUT."),
        "pdfs": Lazy(
            "kyso.cli_pdf:sign_pdfs",
            "Sign every SOURCE into OUT_DIR (same file names, invisible signatures) on every core.",
        ),
        "xml": Lazy(
            "kyso.cli_xml:sign_xml",
            "Sign an XML document (edXML package, status message…) with enveloped XAdES.",
        ),
    },
)
def sign() -> None:
    """Sign a document: PDF (PAdES), XML (XAdES) or any file (CAdES, detached)."""
