"""Real local servers for notification tests: a recording HTTP server and an SMTP sink.

Both listen on 127.0.0.1 only. The HTTP server answers from a scripted list of statuses
(the last one repeats) and can hold requests until released, to kill a worker mid-send.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingHttpServer:
    statuses: list[int] = field(default_factory=lambda: [200])
    hold: threading.Event | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            index = len(self.requests) - 1
        self.arrived.set()
        return self.statuses[min(index, len(self.statuses) - 1)]


def _handler_for(server: RecordingHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = server.record(RecordedRequest(
                "POST", self.path, {k: v for k, v in self.headers.items()}, body))
            if server.hold is not None:
                server.hold.wait(60)
            payload = b'{"ok": true}' if status < 400 else b'{"error": "scripted failure"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def http_server(statuses: list[int] | None = None,
                hold: threading.Event | None = None) -> Iterator[RecordingHttpServer]:
    recorder = RecordingHttpServer(statuses=statuses or [200], hold=hold)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(recorder))
    httpd.daemon_threads = True
    recorder.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        if hold is not None:
            hold.set()
        httpd.shutdown()
        httpd.server_close()


@dataclass
class SmtpSink:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@contextmanager
def smtp_server(*, require_auth: bool = False, password: str = "s3cret",
                tls_context: Any = None) -> Iterator[SmtpSink]:
    """An aiosmtpd server on 127.0.0.1 (STARTTLS offered when `tls_context` is given)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    sink = SmtpSink(port=0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            sink.messages.append(message_from_bytes(envelope.original_content))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and auth_data.password.decode() == password:
            sink.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    kwargs: dict[str, Any] = {}
    if require_auth:
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=tls_context is not None)
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    sink.port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port, **kwargs)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0,
               interval: float = 0.05, message: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
