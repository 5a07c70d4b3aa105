"""Where a PKI directory keeps its files.

```
DIR/pki.json            manifest (base URL, creation time)
DIR/ca/root.pem         CA certificates (public)
DIR/ca/issuing.pem
DIR/ca/chain.pem        issuing + root, for tools that want one file
DIR/crl/<ca>.crl        current CRLs (DER)
DIR/private/<name>.p12  CA and service keys (encrypted PKCS#12: tsa, ocsp, relay)
DIR/certs/<slug>.pem    issued end-entity certificates
DIR/keys/<slug>.p12     their keys (encrypted PKCS#12), unless held in an HSM
DIR/images/<slug>.png   demo signature (blue) and seal (red) images
```
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PKINotInitialised

ROOT_CA = "root"
ISSUING_CA = "issuing"
SERVICES = ("tsa", "ocsp", "relay")


def slug(text: str) -> str:
    """An ASCII file name for Vietnamese text: ``Nguyễn Văn An`` → ``nguyen-van-an``."""
    text = text.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.]+", "-", ascii_text.lower()).strip("-") or "key"


@dataclass(frozen=True)
class PkiLayout:
    """Paths inside one PKI directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "pki.json"

    def ca_certificate(self, name: str) -> Path:
        return self.root / "ca" / f"{name}.pem"

    @property
    def chain(self) -> Path:
        return self.root / "ca" / "chain.pem"

    def private_key(self, name: str) -> Path:
        return self.root / "private" / f"{name}.p12"

    def crl(self, ca_name: str) -> Path:
        return self.root / "crl" / f"{ca_name}.crl"

    def certificate(self, name: str) -> Path:
        return self.root / "certs" / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.root / "keys" / f"{name}.p12"

    def image(self, name: str) -> Path:
        return self.root / "images" / f"{name}.png"

    def exists(self) -> bool:
        return self.manifest.is_file()

    def read_manifest(self) -> dict[str, Any]:
        if not self.exists():
            raise PKINotInitialised(
                f"{self.root} holds no PKI: run `kyso pki init --dir {self.root}` first"
            )
        data: dict[str, Any] = json.loads(self.manifest.read_text(encoding="utf-8"))
        return data

    def write_manifest(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, ensure_ascii=False, indent=2)
        self.manifest.write_text(text + "\n", encoding="utf-8")
