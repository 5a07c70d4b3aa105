"""certs.egress: the egress allow-list (names, wildcards, networks, special addresses, numeric
host forms) and URL checks, with an injected resolver (no network)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from certs.egress import (
    DENY_ALL,
    EgressPolicy,
    EgressRefused,
    InvalidEgressRule,
    IPAddress,
    Unresolvable,
    check_destination,
    parse_url,
    system_resolver,
)

PUBLIC = "93.184.216.34"  # an ordinary Internet address (never contacted: nothing connects here)


def resolver_of(table: dict[str, Sequence[str]]):
    """A resolver answering from ``table`` (name → addresses); a missing name does not resolve."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise Unresolvable(f"{host} does not resolve")
        return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


NAMES = resolver_of(
    {
        "push.example.vn": [PUBLIC],
        "a.example.vn": [PUBLIC],
        "a.b.example.vn": [PUBLIC],
        "example.vn": [PUBLIC],
        "badexample.vn": [PUBLIC],
        "internal.example.vn": ["10.0.0.5"],
        "mixed.example.vn": [PUBLIC, "127.0.0.1"],
        "mapped.example.vn": ["::ffff:127.0.0.1"],
        "meta.example.vn": ["169.254.169.254"],
        "v6.example.vn": ["2606:2800:220:1:248:1893:25c8:1946"],
        "nothing.example.vn": [],
        "localhost": ["127.0.0.1", "::1"],
    }
)


def allowed(policy: EgressPolicy, url: str) -> bool:
    try:
        check_destination(policy, url, NAMES)
    except EgressRefused:
        return False
    return True


# --- Parsing the allow-list ----------------------------------------------------------------------


def test_an_allow_list_of_names_wildcards_and_networks() -> None:
    policy = EgressPolicy.parse("Push.Example.VN., *.gov.vn  10.20.0.0/16,[::1], 192.0.2.7")
    assert policy.hosts == frozenset({"push.example.vn"})
    assert policy.suffixes == (".gov.vn",)
    assert policy.networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert EgressPolicy.parse("") == DENY_ALL == EgressPolicy.parse(" , ")


@pytest.mark.parametrize(
    "entry",
    [
        "10.1.2.3/8",  # host bits set: 10.0.0.0/8 or 10.1.2.3/32?
        "0x7f.1",  # a numeric form resolvers would read as 127.0.0.1
        "2130706433",
        "http://push.example.vn/",
        "push_example.vn",
        "*.",
        "*",
        "-push.example.vn",
        "::ffff:127.0.0.0/104",  # list 127.0.0.0/8 itself
        "300.1.1.1",
    ],
)
def test_a_malformed_entry_is_an_error_not_ignored(entry: str) -> None:
    with pytest.raises(InvalidEgressRule):
        EgressPolicy.parse(f"push.example.vn, {entry}")


# --- Nothing is allowed by default --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://localhost/",
        "https://push.example.vn/hook",
        f"http://{PUBLIC}/",
        "http://10.0.0.5/",
    ],
)
def test_nothing_is_allowed_by_default(url: str) -> None:
    assert not allowed(DENY_ALL, url)


# --- Addresses written in the URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        ("127.0.0.0/8", "http://127.0.0.1:5000/push", True),
        ("127.0.0.0/8", "http://127.0.0.2/", True),
        ("127.0.0.1", "http://127.0.0.2/", False),
        ("10.0.0.0/8", "http://10.0.0.5/", True),
        ("10.0.0.0/8", "http://192.168.1.5/", False),
        ("push.example.vn", f"http://{PUBLIC}/", False),  # an address needs its network listed
        (f"{PUBLIC}/32", f"http://{PUBLIC}/", True),
        ("127.0.0.0/8", "http://0.0.0.0/", False),
        ("127.0.0.0/8", "http://224.0.0.1/", False),
        ("127.0.0.0/8", "http://100.64.0.1/", False),
        ("127.0.0.0/8", "http://255.255.255.255/", False),
        # IPv6
        ("127.0.0.0/8", "http://[::1]/", False),
        ("::1", "http://[::1]:8080/", True),
        ("::1", "http://[fe80::1]/", False),
        ("::1", "http://[ff02::1]/", False),
        ("::1", "http://[fc00::1]/", False),
        ("::1", "http://[::]/", False),
        ("fc00::/7", "http://[fc00::1]/", True),
        # IPv4-mapped IPv6 is judged as the IPv4 address it is
        ("", "http://[::ffff:127.0.0.1]/", False),
        ("::1", "http://[::ffff:127.0.0.1]/", False),
        ("127.0.0.0/8", "http://[::ffff:127.0.0.1]/", True),
        ("127.0.0.0/8", "http://[::ffff:7f00:1]/", True),
        ("169.254.0.0/16", "http://[::ffff:169.254.169.254]/", False),
        # IPv6 forms that embed an IPv4 address: 6to4, NAT64, IPv4-compatible
        ("127.0.0.0/8", "http://[2002:7f00:1::]/", False),
        ("127.0.0.0/8", "http://[64:ff9b::7f00:1]/", False),
        ("127.0.0.0/8", "http://[::7f00:1]/", False),
    ],
)
def test_addresses_need_a_listed_network(allow: str, url: str, ok: bool) -> None:
    assert allowed(EgressPolicy.parse(allow), url) is ok


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        ("169.254.0.0/16", "http://169.254.169.254/latest", False),
        ("169.254.0.0/16", "http://169.254.170.2/v2/credentials", False),
        ("169.254.0.0/16", "http://169.254.1.1/", True),  # link-local, listed: allowed
        ("169.254.169.254", "http://169.254.169.254/latest", True),  # listed by itself
        ("100.64.0.0/10", "http://100.100.100.200/latest", False),
        ("168.63.0.0/16", "http://168.63.129.16/", False),  # a public address, still metadata
        ("fd00::/8", "http://[fd00:ec2::254]/", False),
        ("fd00:ec2::254/128", "http://[fd00:ec2::254]/", True),
        ("meta.example.vn, 169.254.0.0/16", "http://meta.example.vn/", False),
    ],
)
def test_metadata_addresses_only_when_listed_by_themselves(allow: str, url: str, ok: bool) -> None:
    assert allowed(EgressPolicy.parse(allow), url) is ok


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",
        "017700000001",  # octal
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "127.0.1",
        "127.000.000.001",
        "0x7f.0x0.0x0.0x1",
        "1.2.3.0x4",
        "example.123",
    ],
)
def test_numeric_host_forms_do_not_slip_past(host: str) -> None:
    # Listing everything the forms could mean still does not let them through: they are
    # refused before any resolver reads them.
    lenient = EgressPolicy.parse("127.0.0.0/8, 1.2.3.0/24, example.vn, *.example.vn")
    with pytest.raises(EgressRefused, match="non-standard form"):
        check_destination(lenient, f"http://{host}/", NAMES)


def test_the_system_resolver_reads_the_decimal_form_as_loopback() -> None:
    # Why the numeric forms are refused outright: getaddrinfo turns them into 127.0.0.1.
    assert system_resolver("2130706433", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert system_resolver("0x7f.1", 80) == [ipaddress.ip_address("127.0.0.1")]


# --- Host names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        ("push.example.vn", "https://push.example.vn/hook", True),
        ("push.example.vn", "https://PUSH.Example.vn./hook", True),
        ("push.example.vn", "https://a.example.vn/hook", False),
        ("*.example.vn", "https://a.example.vn/", True),
        ("*.example.vn", "https://a.b.example.vn/", True),
        ("*.example.vn", "https://example.vn/", False),  # the suffix, not the name itself
        ("*.example.vn", "https://badexample.vn/", False),
        ("push.example.vn", f"https://{PUBLIC}/", False),
        ("*.example.vn", "https://v6.example.vn/", True),
        # a listed name must still resolve to ordinary addresses, or to listed networks
        ("*.example.vn", "http://internal.example.vn/", False),
        ("*.example.vn, 10.0.0.0/8", "http://internal.example.vn/", True),
        ("*.example.vn", "http://mapped.example.vn/", False),
        ("*.example.vn, 127.0.0.0/8", "http://mapped.example.vn/", True),
        # every address counts: one forbidden address refuses the name
        ("*.example.vn", "http://mixed.example.vn/", False),
        # a listed network does not list the names that resolve into it
        ("127.0.0.0/8, ::1", "http://localhost/", False),
        ("localhost", "http://localhost/", False),
        ("localhost, 127.0.0.0/8", "http://localhost/", False),  # ::1 is not listed
        ("localhost, 127.0.0.0/8, ::1", "http://localhost/", True),
    ],
)
def test_names_must_be_listed_and_resolve_to_allowed_addresses(
    allow: str, url: str, ok: bool
) -> None:
    assert allowed(EgressPolicy.parse(allow), url) is ok


def test_the_refusal_says_why() -> None:
    policy = EgressPolicy.parse("*.example.vn")
    with pytest.raises(EgressRefused, match=r"internal\.example\.vn resolves to 10\.0\.0\.5"):
        check_destination(policy, "http://internal.example.vn/", NAMES)
    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is a loopback address"):
        check_destination(policy, "http://mixed.example.vn/", NAMES)
    with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 is a cloud metadata address"):
        check_destination(policy, "http://169.254.169.254/latest", NAMES)
    with pytest.raises(EgressRefused, match=r"other\.vn is not an allowed host"):
        check_destination(policy, "http://other.vn/", NAMES)
    with pytest.raises(Unresolvable):
        check_destination(policy, "http://gone.example.vn/", NAMES)
    with pytest.raises(Unresolvable):
        check_destination(policy, "http://nothing.example.vn/", NAMES)


def test_a_destination_keeps_the_checked_addresses() -> None:
    policy = EgressPolicy.parse("*.example.vn, 127.0.0.0/8")
    destination = check_destination(policy, "http://mapped.example.vn:8080/a/b?c=d", NAMES)
    assert destination.addresses == (ipaddress.ip_address("127.0.0.1"),)
    target = destination.target
    assert (target.scheme, target.host, target.port, target.path) == (
        "http",
        "mapped.example.vn",
        8080,
        "/a/b?c=d",
    )


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://push.example.vn/", "only http"),
        ("file:///etc/passwd", "only http"),
        ("gopher://push.example.vn:70/", "only http"),
        ("push.example.vn/hook", "only http"),
        ("http://user:secret@push.example.vn/", "user name or password"),
        ("http://user@push.example.vn/", "user name or password"),
        ("http://push.example.vn@127.0.0.1/", "user name or password"),
        ("http://push.example.vn/hook#part", "fragment"),
        ("http://push.example.vn/" + "a" * 2100, "longer than"),
        ("http://push.example.vn/ hook", "printable ASCII"),
        ("http://push.example.vn/\r\nX-Injected: 1", "printable ASCII"),
        ("http://đà-nẵng.vn/", "printable ASCII"),
        ("http://push.example.vn:0/", "port"),
        ("http://push.example.vn:99999/", "port"),
        ("http://push.example.vn:http/", "port"),
        ("http:///hook", "no host"),
        ("http://[::1/", "malformed"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://push_hook.example.vn/", "not a host name"),
    ],
)
def test_unacceptable_urls(url: str, why: str) -> None:
    with pytest.raises(EgressRefused, match=why):
        parse_url(url)
