"""The guarded HTTP client every outbound call uses; it must never reach a forbidden address.

`guarded_request` resolves the host once, refuses the call when any resolved address is
forbidden (unless HTTP_ALLOWED_HOSTS names the host), then connects to exactly the addresses
it checked: the host name is never looked up a second time (no DNS-rebinding window), while
the Host header and TLS server name (SNI and certificate check) keep the original name.
Redirects are never followed; 3xx answers come back as they are.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from worker.address_guard import host_is_allowed, is_forbidden_address, parse_address

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024


class OutboundError(Exception):
    """A retryable failure: connect/read error, timeout, name resolution, response too large."""


class OutboundBlockedError(Exception):
    """A permanent refusal: forbidden address, scheme or host; retrying cannot help."""


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    authorization: str | None


def guarded_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    data: bytes | str | None = None,
    json_body: Any = None,
    timeout_seconds: float = 30.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    allowed_hosts: Iterable[str] = (),
) -> OutboundResponse:
    """Send one HTTP request under the outbound-address guard.

    `timeout_seconds` bounds the connect and every read, and the whole exchange as a deadline.

    Raises:
        OutboundBlockedError: the scheme is not http/https, the URL is malformed, or the host
            resolves to a forbidden address and is not in `allowed_hosts`.
        OutboundError: resolution, connect or read failure, timeout, or a body larger than
            `max_response_bytes`.
    """
    target = _parse_url(url, params)
    addresses = _resolve(target.host, target.port)
    refuse_forbidden(target.host, target.port, addresses, allowed_hosts)
    body, send_headers = _encode_body(data, json_body, headers, target.authorization)
    deadline = time.monotonic() + timeout_seconds
    connection = _connect(target, addresses, timeout_seconds)
    try:
        return _exchange(connection, method.upper(), target.path, body, send_headers,
                         deadline, max_response_bytes)
    except (OSError, http.client.HTTPException) as error:
        raise OutboundError(f"{method.upper()} {target.host}: {_describe(error)}") from None
    except ValueError as error:
        # http.client refuses control characters in the method, path or header values.
        raise OutboundBlockedError(f"invalid request: {error}") from None
    finally:
        connection.close()


def refuse_forbidden(
    host: str, port: int, addresses: Sequence[str], allowed_hosts: Iterable[str]
) -> None:
    """Refuse when ANY of the resolved addresses is forbidden and the host is not allowed.

    Raises:
        OutboundBlockedError: naming the host and the first forbidden address.
    """
    if host_is_allowed(host, port, allowed_hosts):
        return
    refused = [address for address in addresses if is_forbidden_address(address)]
    if refused or not addresses:
        shown = refused[0] if refused else "no address"
        raise OutboundBlockedError(
            f"refused outbound call to {host}: it resolves to a non-public address "
            f"({shown}); list the host in HTTP_ALLOWED_HOSTS to allow it"
        )


def _parse_url(url: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise OutboundBlockedError(f"malformed URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundBlockedError(
            f"refused URL scheme {scheme or '(none)'!r}: only http and https"
        )
    host = parts.hostname
    if not host:
        raise OutboundBlockedError("malformed URL: no host")
    path = parts.path or "/"
    query = parts.query
    if params:
        extra = urlencode(params, doseq=True)
        query = f"{query}&{extra}" if query else extra
    if query:
        path = f"{path}?{query}"
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return _Target(scheme, host, port or (443 if scheme == "https" else 80), path, authorization)


def _resolve(host: str, port: int) -> list[str]:
    """Every address of `host`, from one lookup (an IP literal needs none)."""
    try:
        return [str(parse_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise OutboundError(f"cannot resolve {host}: {_describe(error)}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundError(f"cannot resolve {host}: no address")
    return addresses


def _encode_body(
    data: bytes | str | None,
    json_body: Any,
    headers: Mapping[str, str] | None,
    authorization: str | None,
) -> tuple[bytes | None, dict[str, str]]:
    send_headers = {str(k): str(v) for k, v in (headers or {}).items()}
    lowered = {k.lower() for k in send_headers}
    if authorization and "authorization" not in lowered:
        send_headers["Authorization"] = authorization
    if json_body is not None:
        if "content-type" not in lowered:
            send_headers["Content-Type"] = "application/json"
        return json.dumps(json_body, separators=(",", ":")).encode(), send_headers
    if isinstance(data, str):
        return data.encode(), send_headers
    return data, send_headers


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a fixed, already-checked address; `host` stays the name for the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, verifying the certificate against the original host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _connect(target: _Target, addresses: list[str], timeout: float) -> http.client.HTTPConnection:
    """Connect to the first reachable address of those checked; never resolve again."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    last: Exception | None = None
    for address in addresses:
        connection = kind(target.host, target.port, address, timeout)
        try:
            connection.connect()
            return connection
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            last = error
    raise OutboundError(f"cannot connect to {target.host}:{target.port}: {_describe(last)}")


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: float,
    max_response_bytes: int,
) -> OutboundResponse:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_response_bytes:
        raise OutboundError(f"response too large: {declared} bytes (limit {max_response_bytes})")
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise OutboundError("timed out reading the response")
        chunk = response.read1(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_response_bytes:
            raise OutboundError(f"response too large: over {max_response_bytes} bytes")
        chunks.append(chunk)
    response_headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        response_headers[key] = f"{response_headers[key]}, {value}" if key in response_headers \
            else value
    return OutboundResponse(response.status, response_headers, b"".join(chunks))


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no address to try"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    text = str(error) or type(error).__name__
    return text
