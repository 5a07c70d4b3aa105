"""Where Kyso may connect to on behalf of others: an egress allow-list, and HTTP through it.

Some URLs Kyso fetches or posts to are chosen by other people: an agency's push endpoint, the
OCSP and CRL addresses written in a certificate. Without a policy such a URL reaches whatever
the server can reach — its own loopback services, the cloud metadata service at
169.254.169.254, the machines of the internal network (server-side request forgery).

An :class:`EgressPolicy` is what an administrator allows, and nothing else is allowed:

* **host names**, exact (``push.soyte.nghean.gov.vn``) or by suffix (``*.nghean.gov.vn``: any
  name below it, at any depth, not the name itself), or, where the caller allows it, every name
  (``*``: for the OCSP and CRL addresses in certificates, which no administrator can list in
  advance). A name must be
  listed; then each of the addresses it resolves to must be an ordinary Internet address, or
  lie in a listed network.
* **networks** (CIDR; an address is a network of one). A URL whose host is an IP address is
  allowed only if a listed network holds it. Networks are also the explicit opt-in for the
  special addresses: loopback, link-local, private and shared (CGNAT) ranges, unspecified,
  multicast, reserved, 6to4 and NAT64 — refused unless a listed network holds them (e.g.
  ``127.0.0.0/8`` for a test endpoint on the same machine). A network entry permits every
  address inside it, so list the narrowest one. Cloud metadata addresses (:data:`METADATA`)
  need more still: a network entry of exactly that one address.

IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged, and connected to, as the IPv4
address they are. A host written as a number in any other form than the dotted quad
(``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``) is refused outright: resolvers read
those forms differently, which is how such checks are usually bypassed.

:func:`fetch` makes one HTTP(S) request through a policy, safe against DNS rebinding: the name
is resolved once, every address checked, and the socket connected to a checked address — not
to whatever the name resolves to a moment later. See :func:`fetch` for how.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (host name, port) → its addresses; raise Unresolvable when it has none.
Resolver = Callable[[str, int], Sequence[IPAddress]]

MAX_URL_LENGTH = 2048
DEFAULT_MAX_BODY = 64 * 1024
_CHUNK = 16 * 1024
_PORTS = {"http": 80, "https": 443}

# Cloud instance metadata services: they hand out the machine's credentials to anyone who asks.
METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a public address)
        "192.0.0.192",  # Oracle Cloud
    )
)
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# The last label of a name in these forms makes resolvers read the whole host as IPv4.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class EgressError(Exception):
    """Base class of the egress errors."""


class EgressRefused(EgressError):
    """The destination is not allowed by the policy, or the URL is not acceptable."""


class Unresolvable(EgressRefused):
    """The host name does not resolve (to any address)."""


class InvalidEgressRule(EgressError, ValueError):
    """An allow-list entry is not a host name, a ``*.suffix`` or a network."""


# --- Addresses and names ---------------------------------------------------------------------


def plain_address(address: IPAddress) -> IPAddress:
    """``address``, or the IPv4 address an IPv4-mapped IPv6 address stands for."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def special_kind(address: IPAddress) -> str | None:
    """What kind of special address ``address`` is, or None for an ordinary Internet address."""
    address = plain_address(address)
    checks: list[tuple[bool, str]] = [
        (address in METADATA, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private or special-purpose address"),
        (address.is_reserved, "a reserved address"),
        (address in _SIXTOFOUR, "a 6to4 address (it embeds an IPv4 address)"),
        (any(address in net for net in _NAT64), "a NAT64 address (it embeds an IPv4 address)"),
        (not address.is_global, "not a global address"),
    ]
    return next((kind for hit, kind in checks if hit), None)


def normal_name(name: str) -> str:
    """A host name in the form it is compared in: lower case, without the root's dot.

    Raises :class:`EgressRefused` unless it is an ASCII DNS name (letters, digits, hyphens;
    internationalised names in their ``xn--`` form) whose last label is not a number.
    """
    name = name.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise EgressRefused(f"{name!r} is not a host name")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise EgressRefused(
            f"{name!r} is an IP address in a non-standard form (only a dotted quad is accepted)"
        )
    return name


def _literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, or None if the host is a name."""
    if ":" in host:
        if "%" in host:
            raise EgressRefused("IPv6 zone identifiers are not accepted")
        try:
            return plain_address(ipaddress.IPv6Address(host))
        except ValueError:
            raise EgressRefused(f"{host!r} is not an IPv6 address") from None
    if _NUMERIC_LABEL.match(host.lower().removesuffix(".").rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(host.removesuffix("."))  # dotted quad, no leading zeros
        except ValueError:
            raise EgressRefused(
                f"{host!r} is an IP address in a non-standard form (only a dotted quad is accepted)"
            ) from None
    return None


# --- The policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EgressPolicy:
    """An allow-list of destinations; the default allows nothing. See the module's docstring."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".nghean.gov.vn" for the entry "*.nghean.gov.vn"
    networks: tuple[IPNetwork, ...] = ()
    any_name: bool = False  # the entry "*": every host name (its addresses are still checked)

    @classmethod
    def parse(cls, entries: str | Iterable[str], any_name: bool = False) -> EgressPolicy:
        """The policy of ``"push.example.vn, *.gov.vn, 10.20.0.0/16, [::1]"`` (commas or spaces).

        With ``any_name`` the entry ``"*"`` is accepted too: every host name whose addresses
        are ordinary Internet addresses (for certificates' OCSP and CRL URLs; a push endpoint's
        host must be listed, so there it stays an error).

        Raises :class:`InvalidEgressRule` for an entry that is none of the three, or a network
        with host bits set (``10.1.2.3/8``: did the administrator mean 10.0.0.0/8?).
        """
        if isinstance(entries, str):
            entries = entries.replace(",", " ").split()
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        every_name = False
        for entry in entries:
            network = _network(entry)
            if entry == "*" and any_name:
                every_name = True
            elif network is not None:
                networks.append(network)
            elif entry.startswith("*."):
                suffixes.append("." + _rule_name(entry[2:], entry))
            else:
                hosts.add(_rule_name(entry, entry))
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks), every_name)

    def permits_name(self, name: str) -> bool:
        """Whether the host name (in :func:`normal_name` form) is listed, exactly or by suffix."""
        return (
            self.any_name
            or name in self.hosts
            or any(name.endswith(suffix) for suffix in self.suffixes)
        )

    def refusal(self, address: IPAddress, named: bool) -> str | None:
        """Why the policy refuses a connection to ``address``, or None if it permits it.

        ``named``: the address is one a listed host name resolved to, so an ordinary Internet
        address is permitted; an address written in the URL itself must be in a listed network.
        """
        address = plain_address(address)
        if address in METADATA:
            if any(net.num_addresses == 1 and address in net for net in self.networks):
                return None
            return f"{address} is a cloud metadata address, allowed only if listed by itself"
        if any(address in net for net in self.networks):
            return None
        kind = special_kind(address)
        if kind is not None:
            return f"{address} is {kind}, and no allowed network holds it"
        if named:
            return None
        return f"{address} is not in an allowed network"


def _network(entry: str) -> IPNetwork | None:
    """The network an allow-list entry names, or None if it is not an address or network."""
    text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
    if not (":" in text or "/" in text or _NUMERIC_LABEL.match(text.rsplit(".", 1)[-1].lower())):
        return None
    try:
        network = ipaddress.ip_network(text)
    except ValueError as exc:
        raise InvalidEgressRule(f"{entry!r} is not a network: {exc}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        raise InvalidEgressRule(f"{entry!r}: list the IPv4 network itself")
    return network


def _rule_name(name: str, entry: str) -> str:
    try:
        return normal_name(name)
    except EgressRefused:
        raise InvalidEgressRule(
            f"{entry!r} is not a host name, a *.suffix or a network (CIDR)"
        ) from None


DENY_ALL = EgressPolicy()
# Any host name on the Internet, no special address: where certificates' OCSP and CRL URLs go.
PUBLIC_NAMES = EgressPolicy(any_name=True)


# --- URLs and destinations -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What an acceptable URL asks for."""

    scheme: str  # "http" or "https"
    host: str  # a normal name, or an IP address (IPv6 without brackets)
    port: int
    path: str  # the request target: path and query
    address: IPAddress | None  # the host, when it is an IP address


def parse_url(url: str) -> Target:
    """The target of an http(s) URL, or :class:`EgressRefused` saying what is wrong with it.

    Accepted: http and https only, printable ASCII (percent-encode the rest, write
    internationalised names as ``xn--``), at most :data:`MAX_URL_LENGTH` characters, no user
    name or password, no fragment, a host name or a standard IP address.
    """
    if len(url) > MAX_URL_LENGTH:
        raise EgressRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise EgressRefused("the URL must be printable ASCII without spaces (percent-encode)")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:  # e.g. unbalanced brackets around an IPv6 address
        raise EgressRefused(f"the URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _PORTS:
        raise EgressRefused("only http:// and https:// URLs are accepted")
    if "@" in parts.netloc:
        raise EgressRefused("a user name or password in the URL is not accepted")
    if parts.fragment or url.endswith("#"):
        raise EgressRefused("a URL with a #fragment is not accepted")
    try:
        port = _PORTS[scheme] if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise EgressRefused("the URL's port is not a number from 1 to 65535")
    if not host:
        raise EgressRefused("the URL has no host")
    address = _literal_address(host)
    return Target(
        scheme,
        str(address) if address is not None else normal_name(host),
        port,
        (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        address,
    )


@dataclass(frozen=True)
class Destination:
    """A target and the addresses, each checked, that a connection to it may use."""

    target: Target
    addresses: tuple[IPAddress, ...]


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses ``getaddrinfo`` finds for ``host``, in its order, each once."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = plain_address(ipaddress.ip_address(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_destination(
    policy: EgressPolicy, url: str, resolver: Resolver = system_resolver
) -> Destination:
    """Parse ``url``, resolve its host and check it and **every** address against ``policy``.

    Raises :class:`EgressRefused` (:class:`Unresolvable` when the name has no address) with
    the reason; a name with one refused address among allowed ones is refused as a whole.
    """
    target = parse_url(url)
    if target.address is not None:
        addresses: tuple[IPAddress, ...] = (target.address,)
    else:
        if not policy.permits_name(target.host):
            raise EgressRefused(f"{target.host} is not an allowed host")
        addresses = tuple(plain_address(a) for a in resolver(target.host, target.port))
        if not addresses:
            raise Unresolvable(f"{target.host} does not resolve")
    for address in addresses:
        reason = policy.refusal(address, named=target.address is None)
        if reason is not None:
            where = "" if target.address is not None else f"{target.host} resolves to "
            raise EgressRefused(where + reason)
    return Destination(target, addresses)


# --- HTTP to a checked address ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: the status and at most ``max_body`` bytes of the body."""

    status: int
    body: bytes
    complete: bool  # False: the body was longer than max_body, or slower than the timeout


def _connect(addresses: Sequence[IPAddress], port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of the checked ``addresses`` that answers."""
    error: OSError = ConnectionError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the destination's checked addresses; the Host header still names the host."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.target.host, destination.target.port, timeout=timeout)
        self.addresses = destination.addresses
        self.connect_timeout = timeout

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.connect_timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to the checked addresses, with SNI and certificate checks for the host name."""

    default_port = 443  # no ":443" in the Host header

    def __init__(self, destination: Destination, timeout: float, tls: ssl.SSLContext) -> None:
        super().__init__(destination, timeout)
        self.tls = tls

    def connect(self) -> None:
        super().connect()
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def _read_capped(
    response: http.client.HTTPResponse, sock: socket.socket, limit: int, timeout: float
) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, read within ``timeout`` in all; and whether that
    was the whole body. Reading one byte more than the limit tells a body of exactly
    ``limit`` bytes from a longer one."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) <= limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(data), False
        sock.settimeout(remaining)  # a trickling sender cannot stretch the read
        try:
            chunk = response.read1(min(_CHUNK, limit + 1 - len(data)))
        except TimeoutError:
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data[:limit]), False


def fetch(
    policy: EgressPolicy,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 10.0,
    max_body: int = DEFAULT_MAX_BODY,
    resolver: Resolver = system_resolver,
    tls: ssl.SSLContext | None = None,
) -> Reply:
    """One HTTP(S) request to ``url`` if ``policy`` allows it; never a redirect followed.

    How DNS rebinding is kept out: :func:`check_destination` resolves the name once and checks
    every address; the request then goes out over :mod:`http.client` with a connection whose
    ``connect`` opens the socket to one of those checked addresses (the first that answers)
    instead of resolving the name again. The connection's host stays the URL's host, so the
    ``Host`` header names it and, for https, the TLS handshake sends it as SNI and checks the
    server's certificate against it (``tls``, by default the system's trust store with
    hostname checking). ``http.client`` follows no redirects: a 3xx is returned as it is.

    ``timeout`` bounds the connection, every read, and the whole body; at most ``max_body``
    bytes of the body are read (:attr:`Reply.complete` tells whether that was all of it).
    Raises :class:`EgressRefused`, or :class:`OSError` / :class:`http.client.HTTPException`
    when the exchange fails.
    """
    destination = check_destination(policy, url, resolver)
    connection = (
        _PinnedHTTPSConnection(destination, timeout, tls or ssl.create_default_context())
        if destination.target.scheme == "https"
        else _PinnedHTTPConnection(destination, timeout)
    )
    try:
        connection.request(method, destination.target.path, body=body, headers=dict(headers or {}))
        sock = connection.sock  # kept: getresponse() hands it to the response if it will close
        response = connection.getresponse()
        data, complete = _read_capped(response, sock, max_body, timeout)
        return Reply(response.status, data, complete)
    finally:
        connection.close()  # the unread rest of a long body is dropped with the connection


__all__ = [
    "DENY_ALL",
    "METADATA",
    "PUBLIC_NAMES",
    "Destination",
    "EgressError",
    "EgressPolicy",
    "EgressRefused",
    "InvalidEgressRule",
    "Reply",
    "Resolver",
    "Target",
    "Unresolvable",
    "check_destination",
    "fetch",
    "normal_name",
    "parse_url",
    "plain_address",
    "special_kind",
    "system_resolver",
]
