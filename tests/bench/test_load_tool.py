"""bench.load, the API scenario's load generator, against a real local HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.load import (
    ResponseError,
    build_request,
    response_length,
    run_fixed_rate,
    run_load,
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, self.headers["Authorization"], body))
        count = len(self.server.seen)
        time.sleep(self.server.first_stall if count == 1 else self.server.delay)
        status = 500 if self.server.fail_every and count % self.server.fail_every == 0 else 202
        answer = b'{"status": "running"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.server.close_each:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    httpd.fail_every = 0
    httpd.close_each = False
    httpd.first_stall = httpd.delay = 0.0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _load(server: Any, seconds: float = 0.5, connections: int = 3) -> Any:
    host, port = server.server_address[:2]
    request = build_request(host, port, "secret", "POST", "/api/x/execute", b'{"input": {}}')
    return run_load((host, port), request, seconds, connections)


def _fixed_rate(server: Any, seconds: float, rate: float, connections: int) -> Any:
    host, port = server.server_address[:2]
    request = build_request(host, port, "secret", "POST", "/api/x/execute", b'{"input": {}}')
    return run_fixed_rate((host, port), request, seconds, rate, connections)


def test_every_answer_is_one_request_counted_once(server: Any) -> None:
    result = _load(server)
    assert result.errors == 0
    assert len(result.latencies) == len(server.seen) > 10
    assert all(latency > 0 for latency in result.latencies)
    # Each connection opened (one after another) and answered its share.
    assert len(result.answers_per_connection) == 3
    assert sum(result.answers_per_connection) == len(result.latencies)
    assert min(result.answers_per_connection) > 0
    assert set(server.seen) == {("/api/x/execute", "Bearer secret", b'{"input": {}}')}


def test_error_answers_are_counted(server: Any) -> None:
    server.fail_every = 4
    result = _load(server)
    assert len(result.latencies) == len(server.seen)
    assert result.errors == len(server.seen) // 4 > 0


def test_a_connection_the_server_closes_is_opened_again(server: Any) -> None:
    server.close_each = True
    result = _load(server, connections=2)
    assert result.errors == 0
    assert len(result.latencies) == len(server.seen) > 10


def test_response_length_reads_the_header_block() -> None:
    head = b"HTTP/1.1 202 ACCEPTED\r\nContent-Type: application/json\r\nContent-Length: 17"
    assert response_length(head) == (17, True)
    assert response_length(head + b"\r\nConnection: close") == (17, False)


@pytest.mark.parametrize("head", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 2",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain",
])
def test_answers_it_cannot_frame_are_refused(head: bytes) -> None:
    with pytest.raises(ResponseError):
        response_length(head)


def test_a_fixed_rate_sends_every_due_request_once(server: Any) -> None:
    server.fail_every = 5
    result = _fixed_rate(server, seconds=0.5, rate=60, connections=4)
    assert len(server.seen) == len(result.latencies) == 30
    assert result.errors == 6
    assert sum(result.answers_per_connection) == 30


def test_a_stall_is_charged_to_every_request_it_held_back(server: Any) -> None:
    # One connection, a request due every 20 ms, the first answer 300 ms late: those due
    # meanwhile wait for the connection, and wait from when they were due. Ten of them
    # were due before 200 ms, so at least ten latencies reach 100 ms (a closed loop
    # would report the one slow answer).
    server.first_stall = 0.3
    result = _fixed_rate(server, seconds=0.5, rate=50, connections=1)
    assert result.errors == 0
    assert len(result.latencies) == 25
    assert sum(latency >= 0.1 for latency in result.latencies) >= 10
    assert max(result.latencies) >= 0.3


def test_connections_open_as_the_load_needs_them(server: Any) -> None:
    # A request due every 100 ms and answered at once needs one connection, not five.
    assert len(_fixed_rate(server, seconds=0.5, rate=10, connections=5)
               .answers_per_connection) <= 2
    # Answers that take 100 ms, due every 10 ms: every connection allowed opens.
    server.delay = 0.1
    busy = _fixed_rate(server, seconds=0.3, rate=100, connections=3)
    assert len(busy.answers_per_connection) == 3
    assert busy.errors == 0 and len(busy.latencies) == 30


def test_a_fixed_rate_reopens_a_connection_the_server_closes(server: Any) -> None:
    server.close_each = True
    result = _fixed_rate(server, seconds=0.5, rate=40, connections=2)
    assert result.errors == 0
    assert len(result.latencies) == len(server.seen) == 20


def test_a_fixed_rate_gives_up_on_a_silent_server(server: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The only connection's answer never comes in time, and three more requests wait for
    # it: all four fail once the server has been silent too long, and the load ends.
    monkeypatch.setattr("bench.load._SILENCE_SECONDS", 0.3)
    server.first_stall = 3.0
    result = _fixed_rate(server, seconds=0.2, rate=20, connections=1)
    assert result.errors == 4
    assert result.latencies == []
