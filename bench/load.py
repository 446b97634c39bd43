"""A small closed-loop HTTP load generator, run as its own process by the API scenario.

    python -m bench.load URL TOKEN METHOD PATH BODY_JSON SECONDS CONNECTIONS
prints one JSON line: requests, errors, requests_per_second, p50_ms, p99_ms,
answers_per_connection.

Each of CONNECTIONS keep-alive connections sends its next request as soon as the answer
to its last one is in, as wrk does. One thread drives them all on non-blocking sockets:
the load shares the cores with the system it measures, so it should take as little of
them as it can (a thread per connection took about three times the CPU per request).

The connections open one after another, each once the one before has its first answer,
as clients arriving one by one would. Opened in one burst, they were nearly all accepted
by whichever gunicorn process woke first (often 7 of 8, sometimes all 8 on one process,
which then served alone). How many answers each connection got is in the output
(`answers_per_connection`), so a lopsided split shows.
"""

from __future__ import annotations

import collections
import json
import selectors
import socket
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.stats import percentile

_HEADER_END = b"\r\n\r\n"
_SILENCE_SECONDS = 30.0


def build_request(host: str, port: int, token: str, method: str, path: str,
                  body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
             f"Authorization: Bearer {token}", "Content-Type: application/json",
             f"Content-Length: {len(body or b'')}", "", ""]
    return "\r\n".join(lines).encode() + (body or b"")


class ResponseError(Exception):
    """The server's answer could not be read as HTTP/1.1 with a Content-Length."""


def response_length(head: bytes) -> tuple[int, bool]:
    """From a response's header block: the body's length, and whether the server keeps
    the connection open. Raises ResponseError for an answer this tool cannot frame."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 "):
        raise ResponseError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    length = None
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding":
            raise ResponseError("chunked answers are not supported")
    if length is None:
        raise ResponseError("answer without Content-Length")
    return length, keep_alive


def status_of(head: bytes) -> int:
    return int(head[9:12])


@dataclass
class _Connection:
    address: tuple[str, int]
    sock: socket.socket | None = None
    buffer: bytearray = field(default_factory=bytearray)
    sent_at: float = 0.0
    answers: int = 0

    def open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=_SILENCE_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.buffer.clear()
        return sock

    def answer(self) -> tuple[int, bool] | None:
        """The status and keep-alive of a complete answer in the buffer (then consumed),
        or None while more is to come."""
        end = self.buffer.find(_HEADER_END)
        if end < 0:
            return None
        head = bytes(self.buffer[:end])
        length, keep_alive = response_length(head)
        total = end + len(_HEADER_END) + length
        if len(self.buffer) < total:
            return None
        del self.buffer[:total]
        return status_of(head), keep_alive


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    answers_per_connection: list[int] = field(default_factory=list)


def run_load(address: tuple[str, int], request: bytes, seconds: float,
             connections: int) -> LoadResult:
    result = LoadResult()
    selector = selectors.DefaultSelector()
    stop_at = time.monotonic() + seconds

    def send(connection: _Connection) -> None:
        assert connection.sock is not None
        connection.sent_at = time.perf_counter()
        # A request of a few hundred bytes fits an empty socket buffer whole.
        connection.sock.sendall(request)

    def close(connection: _Connection) -> None:
        if connection.sock is not None:
            selector.unregister(connection.sock)
            connection.sock.close()
            connection.sock = None

    def restart(connection: _Connection) -> None:
        close(connection)
        selector.register(connection.open(), selectors.EVENT_READ, connection)
        send(connection)

    def next_request(connection: _Connection, keep_alive: bool) -> bool:
        """Send the connection's next request; False, with it closed, once time is up."""
        if time.monotonic() >= stop_at:
            close(connection)
            return False
        if keep_alive:
            send(connection)
        else:
            restart(connection)
        return True

    pool = [_Connection(address) for _ in range(connections)]
    unopened = collections.deque(pool[1:])
    restart(pool[0])
    open_count = 1
    while open_count:
        events = selector.select(timeout=_SILENCE_SECONDS)
        if not events:  # the server stopped answering: what is still out failed
            result.errors += open_count
            break
        for key, _ in events:
            connection = key.data
            try:
                chunk = connection.sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("server closed the connection")
                connection.buffer += chunk
                answered = connection.answer()
            except (OSError, ResponseError):
                result.latencies.append(time.perf_counter() - connection.sent_at)
                result.errors += 1
                if not next_request(connection, keep_alive=False):
                    open_count -= 1
                continue
            if answered is None:
                continue
            status, keep_alive = answered
            result.latencies.append(time.perf_counter() - connection.sent_at)
            connection.answers += 1
            if status >= 400:
                result.errors += 1
            if connection.answers == 1 and unopened and time.monotonic() < stop_at:
                restart(unopened.popleft())
                open_count += 1
            if not next_request(connection, keep_alive):
                open_count -= 1
    selector.close()
    result.answers_per_connection = [connection.answers for connection in pool]
    return result


def main(argv: list[str]) -> None:
    url, token, method, path, body_json, seconds, connections = argv
    body = body_json.encode() if body_json != "-" else None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = build_request(host, port, token, method, path, body)
    started = time.monotonic()
    result = run_load((host, port), request, float(seconds), int(connections))
    elapsed = time.monotonic() - started
    latencies = result.latencies
    print(json.dumps({
        "requests": len(latencies), "errors": result.errors,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "answers_per_connection": result.answers_per_connection,
        "cpu_seconds": time.process_time(),  # this load tool's own, for the reader
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
