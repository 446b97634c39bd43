"""A small HTTP load generator, run as its own process by the API scenario.

    python -m bench.load URL TOKEN METHOD PATH BODY_JSON SECONDS CONNECTIONS [RATE]
prints one JSON line: requests, errors, requests_per_second, p50_ms, p99_ms,
answers_per_connection.

Without RATE it is a closed loop, which finds the most the server answers: each of
CONNECTIONS keep-alive connections sends its next request as soon as the answer to its
last one is in, as wrk does. Its latencies are those of a saturated server with
CONNECTIONS requests always in flight, so by Little's law their mean is CONNECTIONS over
the rate: they say how many connections queued, not how fast a call is at a given load.

With RATE it is an open loop, as wrk2 is: request i is due 1 / RATE seconds after
request i - 1, whatever came back before. A due request goes out on an idle connection
(the one idle longest), or waits for one, and its latency counts from when it was due:
a server that stalls is charged for every request the stall held back (no coordinated
omission). That answers "at this many calls a second, how long does a call take?".

One thread drives all connections on non-blocking sockets:
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
from collections.abc import Iterator
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

    def receive(self) -> tuple[int, bool] | None:
        """Read what the socket has; `answer()` of it. Raises OSError or ResponseError
        for a connection that failed (closed by the server, or an answer unframeable)."""
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self.buffer += chunk
        return self.answer()


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    answers_per_connection: list[int] = field(default_factory=list)


def _close(selector: selectors.BaseSelector, connection: _Connection) -> None:
    if connection.sock is not None:
        selector.unregister(connection.sock)
        connection.sock.close()
        connection.sock = None


def _reopen(selector: selectors.BaseSelector, connection: _Connection) -> None:
    """Close the connection's socket, if any, and watch a new one for answers."""
    _close(selector, connection)
    selector.register(connection.open(), selectors.EVENT_READ, connection)


def _answers(events: list[tuple[selectors.SelectorKey, int]]
             ) -> Iterator[tuple[_Connection, tuple[int, bool] | None]]:
    """Each readable connection with its complete answer (status, keep-alive), or with
    None when it failed; one whose answer is still partial is left out."""
    for key, _ in events:
        connection = key.data
        try:
            answered = connection.receive()
        except (OSError, ResponseError):
            yield connection, None
            continue
        if answered is not None:
            yield connection, answered


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

    def restart(connection: _Connection) -> None:
        _reopen(selector, connection)
        send(connection)

    def next_request(connection: _Connection, keep_alive: bool) -> bool:
        """Send the connection's next request; False, with it closed, once time is up."""
        if time.monotonic() >= stop_at:
            _close(selector, connection)
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
        for connection, answered in _answers(events):
            if answered is None:
                result.latencies.append(time.perf_counter() - connection.sent_at)
                result.errors += 1
                if not next_request(connection, keep_alive=False):
                    open_count -= 1
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


def run_fixed_rate(address: tuple[str, int], request: bytes, seconds: float, rate: float,
                   connections: int) -> LoadResult:
    """Open loop: `seconds` x `rate` requests, request i due at i / `rate` seconds in; each
    latency counted from when its request was due. A due request goes out on the
    connection idle longest; with none idle, on a new one while fewer than `connections`
    are open (so they open as the load needs them, one at a time); else it waits."""
    result = LoadResult()
    selector = selectors.DefaultSelector()
    pool: list[_Connection] = []
    idle: collections.deque[_Connection] = collections.deque()
    due: collections.deque[float] = collections.deque()  # due times of requests not yet sent
    total = round(seconds * rate)
    started = time.perf_counter()
    scheduled = in_flight = 0

    def finish(connection: _Connection, failed: bool) -> None:
        nonlocal in_flight
        result.latencies.append(time.perf_counter() - connection.sent_at)
        result.errors += failed
        in_flight -= 1
        idle.append(connection)

    while scheduled < total or due or in_flight:
        now = time.perf_counter()
        while scheduled < total and started + scheduled / rate <= now:
            due.append(started + scheduled / rate)
            scheduled += 1
        while due and (idle or len(pool) < connections):
            if idle:
                connection = idle.popleft()
            else:
                connection = _Connection(address)
                pool.append(connection)
                _reopen(selector, connection)
            assert connection.sock is not None
            connection.sent_at = due.popleft()
            connection.sock.sendall(request)
            in_flight += 1
        next_due = started + scheduled / rate - time.perf_counter()
        timeout = max(0.0, next_due) if scheduled < total else _SILENCE_SECONDS
        events = selector.select(timeout=timeout)
        if not events and scheduled >= total:  # the server stopped answering
            result.errors += in_flight + len(due)  # what is out, and what never went
            break
        for connection, answered in _answers(events):
            if answered is None:
                _reopen(selector, connection)
                finish(connection, failed=True)
                continue
            status, keep_alive = answered
            connection.answers += 1
            if not keep_alive:
                _reopen(selector, connection)
            finish(connection, failed=status >= 400)
    for connection in pool:
        _close(selector, connection)
    selector.close()
    result.answers_per_connection = [connection.answers for connection in pool]
    return result


def main(argv: list[str]) -> None:
    url, token, method, path, body_json, seconds, connections, *rate = argv
    body = body_json.encode() if body_json != "-" else None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = build_request(host, port, token, method, path, body)
    started = time.monotonic()
    if rate:
        result = run_fixed_rate((host, port), request, float(seconds), float(rate[0]),
                                int(connections))
    else:
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
