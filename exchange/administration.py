"""Administration: the directory of agencies as the relay sees it, and its changes.

The directory is read on every send (routing); it is cached for :data:`DIRECTORY_TTL`
seconds, and an administrator's change here clears the cache of this process at once (other
processes see it within the TTL). A change is checked as a whole tree (codes, parents, no
cycles) before it is written, and audited in the same transaction.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from certs.store import CertificateRecord, CertificateStore
from directory import Agency, Directory
from directory.store import AgencyStore

from . import audit as events
from .audit import AuditLog
from .auth import Principal, Role
from .errors import Forbidden
from .routing import RoutingRules
from .store import ExchangeStore

DIRECTORY_TTL = 5.0
AGENCY_PROFILES = ("seal", "person")  # the certificates an agency signs with


@dataclass(frozen=True)
class DirectoryView:
    """The directory for one caller: the agencies with their signing certificates, and
    whom the caller may send to under the routing rules."""

    directory: Directory
    certificates: dict[str, list[CertificateRecord]]  # by agency code
    you: str | None
    you_may_send_to: list[str]
    routing: str  # where the rules come from


class Administration:
    """The directory, cached, and an administrator's changes to it."""

    def __init__(
        self,
        agencies: AgencyStore,
        certificates: CertificateStore,
        routing: RoutingRules,
        database: ExchangeStore,
        audit: AuditLog,
    ) -> None:
        self.agencies = agencies
        self.certificates = certificates
        self.routing = routing
        self.database = database
        self.audit = audit
        self._directory: tuple[float, Directory] | None = None
        self._lock = threading.Lock()

    def directory(self) -> Directory:
        """The current directory (at most :data:`DIRECTORY_TTL` seconds old)."""
        now = time.monotonic()
        with self._lock:
            if self._directory is not None and now - self._directory[0] < DIRECTORY_TTL:
                return self._directory[1]
        directory = self.agencies.directory()
        with self._lock:
            self._directory = (now, directory)
        return directory

    def directory_view(self, principal: Principal) -> DirectoryView:
        directory = self.directory()
        reachable: list[str] = []
        if principal.agency:
            reachable = [a.code for a in self.routing.reachable(directory, principal.agency)]
        certificates: dict[str, list[CertificateRecord]] = {}
        for record in self.certificates.all():
            if record.agency_code and record.profile in AGENCY_PROFILES:
                certificates.setdefault(record.agency_code, []).append(record)
        return DirectoryView(
            directory, certificates, principal.agency, reachable, self.routing.source
        )

    def upsert_agency(self, principal: Principal, agency: Agency) -> bool:
        """An admin adds or changes an agency (the tree is re-checked first); True if added."""
        if principal.role is not Role.ADMIN:
            raise Forbidden("only an administrator may edit the directory")
        current = [a for a in self.agencies.directory() if a.code != agency.code]
        Directory((*current, agency))  # codes, parents, cycles
        with self.database.write() as conn:
            created = self.agencies.upsert(agency, conn)
            self.audit.append(
                conn,
                events.ADMIN,
                principal.name,
                agency.code,
                {
                    "change": "agency-added" if created else "agency-changed",
                    "name": agency.name,
                    "level": agency.level,
                    "parent": agency.parent,
                },
            )
        with self._lock:
            self._directory = None
        return created
