"""A CA hierarchy Kyso did not make, with a real OCSP responder and a CRL over HTTP.

Built in the test with the ``openssl`` command line (``req``, ``ca``), as another CA would:
a root, an issuing CA under it, a delegated OCSP responder certificate, and end-entity
certificates whose authorityInfoAccess and cRLDistributionPoints point at

* ``openssl ocsp`` running as a responder subprocess (:meth:`ForeignCA.start_ocsp`), answering
  from the CA's ``index.txt``: restart it after :meth:`ForeignCA.revoke`, as the issue says;
* the CA's CRL (DER) served by :mod:`http.server` in a thread (:meth:`ForeignCA.start_crl`),
  with the root's CRL about the issuing CA beside it (named by the issuing CA's certificate
  only if made with ``root_crl``).

Both listen on loopback ports reserved when the CA is made (they are written into the
certificates), so a test must allow ``127.0.0.0/8`` in its egress policy, explicitly.
Later tests use it end to end through the relay: see ``tests/test_revocation_fetch.py``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

HOST = "127.0.0.1"

_CONFIG = """\
[ca]
default_ca = issuing

[issuing]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
crlnumber = $dir/crlnumber
new_certs_dir = $dir/issued
certificate = $dir/issuing.pem
private_key = $dir/issuing.key
default_md = sha256
default_days = 365
default_crl_days = 1
policy = anything
unique_subject = no
copy_extensions = none

[root]
dir = {dir}
database = $dir/root-index.txt
crlnumber = $dir/root-crlnumber
certificate = $dir/root.pem
private_key = $dir/root.key
default_md = sha256
default_crl_days = 1

[anything]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
UID = optional
title = optional

[req]
distinguished_name = dn
[dn]

[issuing_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
{issuing_crl}

[ocsp_responder]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[signer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
authorityInfoAccess = OCSP;URI:{ocsp_url}
crlDistributionPoints = URI:{crl_url}
"""


def free_port() -> int:
    """A loopback port nobody listens on now (reserved for a server started later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the OCSP responder did not start")
        time.sleep(0.05)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class ForeignCA:
    """A foreign CA hierarchy in ``directory`` (see the module's docstring)."""

    directory: Path
    ocsp_port: int = field(default_factory=free_port)
    crl_port: int = field(default_factory=free_port)
    _ocsp: subprocess.Popen[bytes] | None = None
    _crl: http.server.ThreadingHTTPServer | None = None

    @property
    def ocsp_url(self) -> str:
        return f"http://{HOST}:{self.ocsp_port}/"

    @property
    def crl_url(self) -> str:
        return f"http://{HOST}:{self.crl_port}/issuing.crl"

    @property
    def root_crl_url(self) -> str:
        """The root's CRL (about the issuing CA), served by the same server."""
        return f"http://{HOST}:{self.crl_port}/root.crl"

    @property
    def config(self) -> Path:
        return self.directory / "openssl.cnf"

    def openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.directory)

    @classmethod
    def create(cls, directory: Path, root_crl: bool = False) -> ForeignCA:
        """Make the root, the issuing CA and the OCSP responder's certificate, and a CRL.

        ``root_crl``: the issuing CA's certificate names the root's CRL (as a licensed CA's
        does), so its revocation can be checked too; without, it names no source at all."""
        ca = cls(directory)
        (directory / "issued").mkdir(parents=True)
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        (directory / "crlnumber").write_text("01\n")
        (directory / "root-index.txt").write_text("")
        (directory / "root-crlnumber").write_text("01\n")
        ca.config.write_text(
            _CONFIG.format(
                dir=directory,
                ocsp_url=ca.ocsp_url,
                crl_url=ca.crl_url,
                issuing_crl=f"crlDistributionPoints = URI:{ca.root_crl_url}" if root_crl else "",
            )
        )
        ca.openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "root.key", "-out", "root.pem", "-days", "3650", "-sha256",
            "-subj", "/C=VN/O=Foreign Trust Services/CN=Foreign Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        ca._request("issuing", "/C=VN/O=Foreign Trust Services/CN=Foreign Issuing CA")
        ca.openssl(
            "x509", "-req", "-in", "issuing.csr", "-CA", "root.pem", "-CAkey", "root.key",
            "-CAcreateserial", "-out", "issuing.pem", "-days", "1825", "-sha256",
            "-extfile", str(ca.config), "-extensions", "issuing_ca",
        )  # fmt: skip
        ca.issue("ocsp", "Foreign OCSP Responder", extensions="ocsp_responder")
        ca.publish_crl()
        ca.openssl(
            "ca", "-config", str(ca.config), "-name", "root", "-gencrl", "-out", "root.crl.pem"
        )
        ca.openssl("crl", "-in", "root.crl.pem", "-outform", "DER", "-out", "root.crl")
        return ca

    def _request(self, name: str, subject: str) -> None:
        self.openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
            "-config", str(self.config),
        )  # fmt: skip

    def issue(
        self, name: str, common_name: str, extensions: str = "signer", subject: str = ""
    ) -> x509.Certificate:
        """Issue ``name``.pem / ``name``.key with ``openssl ca`` (recorded in index.txt; a
        running responder reads the index when it starts: restart it to answer for it).
        ``subject``: more of the subject after the common name (``/UID=MST:0101234567``)."""
        self._request(name, f"/C=VN/O=So Y Te Nghe An/CN={common_name}{subject}")
        self.openssl(
            "ca", "-batch", "-config", str(self.config), "-extensions", extensions,
            "-in", f"{name}.csr", "-out", f"{name}.pem", "-notext",
        )  # fmt: skip
        return self.certificate(name)

    def issue_unrecorded(self, name: str, common_name: str) -> x509.Certificate:
        """Sign a certificate with the issuing CA's key outside ``openssl ca``: not in the
        index, so the responder answers ``unknown`` about it (a key used behind the CA's back)."""
        self._request(name, f"/C=VN/O=So Y Te Nghe An/CN={common_name}")
        self.openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "issuing.pem", "-CAkey", "issuing.key",
            "-set_serial", "0x7777", "-out", f"{name}.pem", "-days", "30", "-sha256",
            "-extfile", str(self.config), "-extensions", "signer",
        )  # fmt: skip
        return self.certificate(name)

    def certificate(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.directory / f"{name}.pem").read_bytes())

    def revoke(self, name: str, reason: str = "keyCompromise") -> None:
        """``openssl ca -revoke``, then a new CRL; restart the OCSP responder to see it."""
        self.openssl(
            "ca", "-config", str(self.config), "-revoke", f"{name}.pem", "-crl_reason", reason
        )
        self.publish_crl()

    def publish_crl(self) -> None:
        """A new CRL (valid a day), as DER where the CRL server serves it."""
        self.openssl("ca", "-config", str(self.config), "-gencrl", "-out", "issuing.crl.pem")
        self.openssl("crl", "-in", "issuing.crl.pem", "-outform", "DER", "-out", "issuing.crl")

    @property
    def root(self) -> x509.Certificate:
        return self.certificate("root")

    @property
    def issuing(self) -> x509.Certificate:
        return self.certificate("issuing")

    # -- the servers ---------------------------------------------------------------------------

    def start_ocsp(self, next_update_minutes: int | None = 60, signer: str = "ocsp") -> None:
        """Run ``openssl ocsp`` as the responder (answers with nextUpdate ``next_update_minutes``
        after thisUpdate; None: answers without nextUpdate), signing with the certificate and
        key ``signer`` (the delegated responder's; ``issuing``: the CA's own)."""
        self.stop_ocsp()
        validity = ["-nmin", str(next_update_minutes)] if next_update_minutes else []
        log = self.directory / "ocsp.log"
        log.write_bytes(b"")
        with log.open("ab") as out:
            self._ocsp = subprocess.Popen(
                [
                    "openssl", "ocsp", "-index", "index.txt", "-port", str(self.ocsp_port),
                    "-rsigner", f"{signer}.pem", "-rkey", f"{signer}.key", "-CA", "issuing.pem",
                    "-ignore_err", *validity,
                ],
                cwd=self.directory,
                stdout=out,
                stderr=out,
            )  # fmt: skip
        # Not a probe connection: the responder serves one client at a time, and one that
        # connects and leaves without a request wedges it. It says when it listens.
        _wait_for(lambda: b"waiting for OCSP client connections" in log.read_bytes())

    def stop_ocsp(self) -> None:
        if self._ocsp is not None:
            self._ocsp.terminate()
            self._ocsp.wait(10)
            self._ocsp = None

    def restart_ocsp(self, next_update_minutes: int | None = 60, signer: str = "ocsp") -> None:
        self.start_ocsp(next_update_minutes, signer)

    def start_crl(self) -> None:
        """Serve the CA's directory (so its CRL) over HTTP, in a thread."""
        if self._crl is not None:
            return
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self._crl = http.server.ThreadingHTTPServer((HOST, self.crl_port), handler)
        threading.Thread(target=self._crl.serve_forever, args=(0.05,), daemon=True).start()

    def stop_crl(self) -> None:
        if self._crl is not None:
            self._crl.shutdown()
            self._crl.server_close()
            self._crl = None

    def stop(self) -> None:
        self.stop_ocsp()
        self.stop_crl()


@contextlib.contextmanager
def foreign_ca(directory: Path, root_crl: bool = False, **signers: str) -> Iterator[ForeignCA]:
    """A :class:`ForeignCA` that issued ``signers`` (file name → common name), with its OCSP
    responder and CRL server running; stopped after. ``root_crl``: see :meth:`ForeignCA.create`."""
    ca = ForeignCA.create(directory, root_crl)
    for name, common_name in signers.items():
        ca.issue(name, common_name)
    try:
        ca.start_crl()
        ca.start_ocsp()
        yield ca
    finally:
        ca.stop()
