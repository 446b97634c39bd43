"""Which network addresses outbound calls may reach; pure classification, never opens a socket.

Every outbound call (the `http` node, webhooks, notifications) asks `is_forbidden_address`
about each address its host resolved to, and `host_is_allowed` whether HTTP_ALLOWED_HOSTS
opens the host anyway. Only globally routable unicast addresses are allowed by default;
IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) are judged
by the embedded IPv4 address so `::ffff:127.0.0.1` cannot smuggle loopback through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

AnyAddress = IPv4Address | IPv6Address

# Ranges Python's `is_global` gets wrong or that deserve naming explicitly. Python 3.11 calls
# multicast, 6to4 and NAT64 addresses "global", so the rules below never rely on it alone.
_FORBIDDEN_V4: tuple[IPv4Network, ...] = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (includes 192.0.0.192 metadata on OCI)
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast
    )
)
_FORBIDDEN_V6: tuple[IPv6Network, ...] = tuple(
    IPv6Network(net)
    for net in (
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated)
        "100::/64",  # discard-only
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, benchmarking...)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local, includes fd00:ec2::254 (AWS metadata)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")


def parse_address(ip: str | AnyAddress) -> AnyAddress:
    """Parse an address, dropping brackets and an IPv6 zone (`fe80::1%eth0`).

    Raises:
        ValueError: when `ip` is not an IP address.
    """
    if isinstance(ip, IPv4Address | IPv6Address):
        return ip
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    return ipaddress.ip_address(text)


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def is_forbidden_address(ip: str | AnyAddress) -> bool:
    """True for every address an outbound call must not reach unless its host is allowed.

    Refuses loopback, private, link-local (cloud metadata), CGNAT, unique-local, multicast,
    unspecified, reserved and documentation ranges, and IPv6 forms embedding such an IPv4
    address. An unparsable address is refused too.
    """
    try:
        address = parse_address(ip)
    except ValueError:
        return True
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return _is_forbidden_v4(inner)
        if any(address in net for net in _FORBIDDEN_V6):
            return True
        return _not_global(address)
    return _is_forbidden_v4(address)


def _is_forbidden_v4(address: IPv4Address) -> bool:
    if any(address in net for net in _FORBIDDEN_V4):
        return True
    return _not_global(address)


def _not_global(address: AnyAddress) -> bool:
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


def split_host_port(entry: str) -> tuple[str, int | None]:
    """Split an HTTP_ALLOWED_HOSTS entry: `host`, `host:port`, `[v6]`, `[v6]:port` or bare v6.

    Raises:
        ValueError: when the port is not a number in 1..65535 or the brackets are unbalanced.
    """
    text = entry.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"unbalanced brackets in host entry {entry!r}")
        host, rest = text[1:close], text[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"unexpected text after ']' in host entry {entry!r}")
        return host, _port(rest[1:], entry)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port, entry)
    # No colon, or several (a bare IPv6 address, which cannot carry a port without brackets).
    return text, None


def _port(raw: str, entry: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"bad port in host entry {entry!r}")
    return int(raw)


def normalize_host(host: str) -> str:
    """Lower-case a host name, drop a trailing dot and brackets; canonicalise IP literals."""
    text = host.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return text


def host_is_allowed(host: str, port: int, allowed_hosts: Iterable[str]) -> bool:
    """True when an HTTP_ALLOWED_HOSTS entry names this host (any port) or this host:port.

    Matching is exact on the name (no wildcards, no suffix matching) so `example.com` never
    opens `evil-example.com` or `internal.example.com`. A malformed entry matches nothing.
    """
    wanted = normalize_host(host)
    for entry in allowed_hosts:
        try:
            entry_host, entry_port = split_host_port(entry)
        except ValueError:
            continue
        if not entry_host:
            continue
        if normalize_host(entry_host) == wanted and entry_port in (None, port):
            return True
    return False
