"""Pure tests of the outbound-address classifier and allow-list matching (no sockets)."""

from __future__ import annotations

import pytest

from worker.address_guard import host_is_allowed, is_forbidden_address, split_host_port
from worker.outbound import OutboundBlockedError, refuse_forbidden

FORBIDDEN = [
    "169.254.169.254",  # cloud metadata
    "fd00:ec2::254",  # AWS metadata over IPv6
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "fd00::1",  # ULA
    "fc00::1",
    "fe80::1",
    "fe80::1%eth0",
    "::ffff:10.0.0.1",
    "127.0.0.1",
    "127.8.9.10",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "::1",
    "::",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.0.192",
    "198.18.0.1",
    "not-an-address",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # mapped form of a public address is judged by that address
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert is_forbidden_address(address) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_accepted(address: str) -> None:
    assert is_forbidden_address(address) is False


@pytest.mark.parametrize(
    ("host", "port", "allowed", "expected"),
    [
        ("api.internal", 443, ["api.internal"], True),
        ("API.Internal.", 443, ["api.internal"], True),
        ("api.internal", 443, ["api.internal:443"], True),
        ("api.internal", 8443, ["api.internal:443"], False),
        ("evil-api.internal", 443, ["api.internal"], False),
        ("x.api.internal", 443, ["api.internal"], False),
        ("127.0.0.1", 8080, ["127.0.0.1:8080"], True),
        ("127.0.0.1", 8081, ["127.0.0.1:8080"], False),
        ("::1", 80, ["[::1]"], True),
        ("::1", 80, ["[::1]:80"], True),
        ("::1", 81, ["[::1]:80"], False),
        ("0:0:0:0:0:0:0:1", 80, ["::1"], True),
        ("localhost", 80, [], False),
        ("localhost", 80, ["[bad", "localhost:notaport", ""], False),
    ],
)
def test_allowed_hosts_match_exactly(host: str, port: int, allowed: list[str],
                                     expected: bool) -> None:
    assert host_is_allowed(host, port, allowed) is expected


def test_split_host_port_rejects_bad_ports() -> None:
    assert split_host_port("[::1]:8080") == ("::1", 8080)
    assert split_host_port("example.com") == ("example.com", None)
    for bad in ("example.com:0", "example.com:70000", "example.com:x", "[::1", "[::1]x"):
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_any_forbidden_address_among_resolved_refuses_the_host() -> None:
    # Pure: a name resolving to a public and a loopback address is refused as a whole.
    with pytest.raises(OutboundBlockedError, match="127.0.0.1"):
        refuse_forbidden("mixed.example", 80, ["93.184.216.34", "127.0.0.1"], ())
    refuse_forbidden("public.example", 80, ["93.184.216.34", "2606:4700::1111"], ())
    refuse_forbidden("mixed.example", 80, ["127.0.0.1"], ["mixed.example"])
    with pytest.raises(OutboundBlockedError):
        refuse_forbidden("empty.example", 80, [], ())
