"""Configuration from the environment, overridable by CLI options.

| variable               | default                        | meaning                          |
|------------------------|--------------------------------|----------------------------------|
| KYSO_DATA              | var                            | data directory                   |
| KYSO_DB                | sqlite:///$KYSO_DATA/kyso.sqlite | database URL (or postgresql://…) |
| KYSO_PKI               | $KYSO_DATA/pki                 | PKI directory                    |
| KYSO_PASSPHRASE        | –                              | passphrase of the PKI's keys     |
| KYSO_PASSPHRASE_FILE   | –                              | file holding that passphrase     |
| KYSO_PKCS11_PIN        | –                              | user PIN of a PKCS#11 token      |
| KYSO_PKCS11_MODULE     | SoftHSM2's module              | PKCS#11 library                  |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str
    pki_dir: Path

    @classmethod
    def load(
        cls, data: str | None = None, db: str | None = None, pki: str | None = None
    ) -> Settings:
        data_dir = Path(data or os.environ.get("KYSO_DATA") or "var")
        db_url = db or os.environ.get("KYSO_DB") or f"sqlite:///{data_dir / 'kyso.sqlite'}"
        pki_dir = Path(pki or os.environ.get("KYSO_PKI") or data_dir / "pki")
        return cls(data_dir, db_url, pki_dir)
