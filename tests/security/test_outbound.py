"""guarded_request end to end, against loopback listeners only (never any other address)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.security.listeners import CountingServer, Listener
from worker.outbound import OutboundBlockedError, OutboundError, guarded_request


@pytest.fixture
def listener() -> Iterator[CountingServer]:
    with Listener() as server:
        yield server


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_loopback_on_a_port_not_allowed_is_refused_without_connecting(
    listener: CountingServer,
) -> None:
    with pytest.raises(OutboundBlockedError, match="127.0.0.1"):
        guarded_request("GET", f"http://127.0.0.1:{listener.port}/",
                        allowed_hosts=[f"127.0.0.1:{listener.port + 1}"])
    assert listener.connections == 0


def test_ipv4_mapped_loopback_is_refused_without_connecting(listener: CountingServer) -> None:
    with pytest.raises(OutboundBlockedError):
        guarded_request("GET", f"http://[::ffff:127.0.0.1]:{listener.port}/")
    assert listener.connections == 0


def test_localhost_name_is_refused_without_connecting(listener: CountingServer) -> None:
    with pytest.raises(OutboundBlockedError):
        guarded_request("GET", f"http://localhost:{listener.port}/")
    assert listener.connections == 0


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this host")
def test_ipv6_loopback_is_refused_without_connecting() -> None:
    with Listener("::1") as server:
        with pytest.raises(OutboundBlockedError):
            guarded_request("GET", f"http://[::1]:{server.port}/")
        assert server.connections == 0
        # The same listener is reachable once the host is allowed: the refusal was the guard.
        response = guarded_request("GET", f"http://[::1]:{server.port}/",
                                   allowed_hosts=[f"[::1]:{server.port}"])
        assert response.status == 200
        assert server.connections == 1


def test_allowed_host_succeeds_and_keeps_method_headers_and_body(
    listener: CountingServer,
) -> None:
    response = guarded_request(
        "post", f"http://127.0.0.1:{listener.port}/hook?a=1",
        headers={"X-Idempotency-Key": "step-1:0"}, params={"b": "two words"},
        json_body={"hello": "world"}, allowed_hosts=[f"127.0.0.1:{listener.port}"],
    )
    assert response.status == 200
    assert response.body == b'{"ok": true}'
    assert response.headers["content-type"] == "application/json"
    [seen] = listener.requests
    assert seen["method"] == "POST"
    assert seen["path"] == "/hook?a=1&b=two+words"
    assert seen["headers"]["X-Idempotency-Key"] == "step-1:0"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["body"] == b'{"hello":"world"}'


def test_pinned_connection_keeps_the_host_name_and_resolves_once(
    listener: CountingServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS is the true external here: a fake name resolves to the loopback listener, and a
    # second lookup (a rebinding attempt) would fail the test.
    real = socket.getaddrinfo
    calls: list[str] = []

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "pinned.test":
            calls.append(host)
            assert len(calls) == 1, "the host name was resolved twice"
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    response = guarded_request("GET", f"http://pinned.test:{listener.port}/x",
                               allowed_hosts=["pinned.test"])
    assert response.status == 200
    assert calls == ["pinned.test"]
    assert listener.requests[0]["headers"]["Host"] == f"pinned.test:{listener.port}"


def test_name_resolving_to_loopback_is_refused(
    listener: CountingServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = "127.0.0.1" if host == "innocent.test" else host
        return real(target, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(OutboundBlockedError, match="innocent.test"):
        guarded_request("GET", f"http://innocent.test:{listener.port}/")
    assert listener.connections == 0


def test_redirect_to_loopback_is_not_followed(listener: CountingServer) -> None:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", f"http://127.0.0.1:{listener.port}/internal")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with Listener(responder=redirect) as front:
        response = guarded_request("GET", f"http://127.0.0.1:{front.port}/",
                                   allowed_hosts=[f"127.0.0.1:{front.port}"])
    assert response.status == 302
    assert response.headers["location"].endswith("/internal")
    assert listener.connections == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://x/",
                                 "http:///nohost", "127.0.0.1:80"])
def test_other_schemes_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundBlockedError):
        guarded_request("GET", url, allowed_hosts=["127.0.0.1"])


def test_response_larger_than_the_cap_fails_retryably(listener: CountingServer) -> None:
    def big(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # no Content-Length: the cap must hold while streaming
        handler.wfile.write(b"x" * 200_000)

    with Listener(responder=big) as server:
        with pytest.raises(OutboundError, match="too large"):
            guarded_request("GET", f"http://127.0.0.1:{server.port}/",
                            max_response_bytes=100_000,
                            allowed_hosts=[f"127.0.0.1:{server.port}"])
        small = guarded_request("GET", f"http://127.0.0.1:{server.port}/",
                                max_response_bytes=300_000,
                                allowed_hosts=[f"127.0.0.1:{server.port}"])
        assert len(small.body) == 200_000


def test_silent_server_times_out_retryably() -> None:
    quiet = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(1)
    port = quiet.getsockname()[1]
    try:
        with pytest.raises(OutboundError, match="timed out"):
            guarded_request("GET", f"http://127.0.0.1:{port}/", timeout_seconds=0.3,
                            allowed_hosts=[f"127.0.0.1:{port}"])
    finally:
        quiet.close()


def test_connection_refused_is_retryable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OutboundError, match="cannot connect"):
        guarded_request("GET", f"http://127.0.0.1:{port}/", allowed_hosts=[f"127.0.0.1:{port}"])


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "127.1",
                                  "127.0.0.1.", "LOCALHOST", "localhost."])
def test_numeric_and_spelled_loopback_forms_are_refused(listener: CountingServer,
                                                         host: str) -> None:
    # getaddrinfo turns these into 127.0.0.1; the check runs on what they resolve to.
    with pytest.raises((OutboundBlockedError, OutboundError)):
        guarded_request("GET", f"http://{host}:{listener.port}/")
    assert listener.connections == 0


def test_proxy_environment_is_ignored(listener: CountingServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would make the request leave through another host, bypassing the pinning.
    with Listener() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        response = guarded_request("GET", f"http://127.0.0.1:{listener.port}/",
                                   allowed_hosts=[f"127.0.0.1:{listener.port}"])
        assert response.status == 200
        assert proxy.connections == 0 and listener.connections == 1
