"""Sign many PDFs with one key on every core.

A PKCS#12 key is opened once, here, and the worker processes are forked with it in memory:
decrypting the file costs as much as a dozen signatures, and a batch of a few hundred
documents takes about a second per core. A PKCS#11 session does not survive a fork (the
standard asks a child to initialise the library again), so with an HSM each worker opens
its own. Results come back in input order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from certs.keystore import SigningKey, open_key
from certs.pkcs11uri import DEFAULT_ACCESS, Pkcs11Access

from .errors import SignerError, SigningFailed
from .pdf import PdfSignOptions, PdfSignResult, sign

Progress = Callable[[int, int], None]

_worker_key: SigningKey | None = None
_worker_options: PdfSignOptions | None = None


@dataclass(frozen=True)
class BatchItem:
    """One document's outcome: a result, or the error that stopped it (others go on)."""

    source: Path
    result: PdfSignResult | None = None
    error: str | None = None


def _init_worker(
    key_ref: str, passphrase: bytes | None, pkcs11: Pkcs11Access, options: PdfSignOptions
) -> None:
    global _worker_key, _worker_options
    _worker_key = open_key(key_ref, passphrase, pkcs11=pkcs11)
    _worker_options = options


def _sign_one(job: tuple[Path, Path]) -> BatchItem:
    source, output = job
    assert _worker_key is not None and _worker_options is not None
    try:
        return BatchItem(source, sign(source, output, _worker_key, _worker_options))
    except SignerError as exc:
        return BatchItem(source, error=str(exc))


def _pool(
    workers: int,
    key_ref: str,
    passphrase: bytes | None,
    pkcs11: Pkcs11Access,
    options: PdfSignOptions,
) -> ProcessPoolExecutor:
    fork = multiprocessing.get_context("fork")
    if key_ref.startswith("p12:"):
        _init_worker(key_ref, passphrase, pkcs11, options)  # inherited by the forked workers
        return ProcessPoolExecutor(max_workers=workers, mp_context=fork)
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=fork,
        initializer=_init_worker,
        initargs=(key_ref, passphrase, pkcs11, options),
    )


def sign_many(
    sources: Sequence[Path],
    out_dir: Path,
    key_ref: str,
    passphrase: bytes | None,
    options: PdfSignOptions,
    workers: int | None = None,
    progress: Progress = lambda done, total: None,
    pkcs11: Pkcs11Access = DEFAULT_ACCESS,
) -> list[BatchItem]:
    """Sign ``sources`` into ``out_dir`` (same file names) using ``workers`` processes.

    ``pkcs11`` reaches a ``pkcs11:`` key (library, PIN) whose URI does not say how.
    ``workers=1`` signs in this process. A document that fails does not stop the others;
    an ``out_dir`` that cannot be created raises :class:`SigningFailed` before any work.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningFailed(f"cannot write into {out_dir}: {exc.strerror}") from None
    jobs = [(source, out_dir / source.name) for source in sources]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        _init_worker(key_ref, passphrase, pkcs11, options)
        items = []
        for done, job in enumerate(jobs, 1):
            items.append(_sign_one(job))
            progress(done, len(jobs))
        return items
    with _pool(workers, key_ref, passphrase, pkcs11, options) as pool:
        items = []
        for done, item in enumerate(pool.map(_sign_one, jobs, chunksize=4), 1):
            items.append(item)
            progress(done, len(jobs))
        return items
