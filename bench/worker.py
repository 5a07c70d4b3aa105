"""One measured operation per process, so peak RSS belongs to that operation alone.

Usage: python -m bench.worker OPERATION PDF KEY_P12 PASSPHRASE_FILE
Prints JSON: {"seconds": …, "peak_rss_bytes": …}.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path


def _sha256(path: Path) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)


def main() -> None:
    operation, pdf, key, secret_file = sys.argv[1:5]
    path = Path(pdf)
    # Imports happen before the clock starts and are part of the "baseline" operation.
    from certs import patches
    from certs.keystore import open_key
    from certs.truststore import load_certificates
    from signer.pdf import PdfSignOptions, sign
    from signer.pdf_verify import verify_pdf
    from signer.policy import ValidationPolicy

    patches.install()
    secret = Path(secret_file).read_bytes().strip()
    start = time.perf_counter()
    if operation == "sha256":
        _sha256(path)
    elif operation == "sign":
        with open_key(f"p12:{key}", secret) as signing_key:
            sign(path, path.with_suffix(".signed.pdf"), signing_key, PdfSignOptions())
    elif operation == "verify":
        roots = load_certificates(Path(key).parent.parent / "ca" / "root.pem")
        report = verify_pdf(path, ValidationPolicy(tuple(roots), offline=True))
        assert report.signatures, "nothing was verified"
    elif operation != "baseline":
        raise SystemExit(f"unknown operation {operation}")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak_rss()}))


def peak_rss() -> int:
    """VmHWM: the high-water mark of this process image (ru_maxrss survives exec, so it would
    count the parent's memory at fork time)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main()
