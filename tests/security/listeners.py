"""Loopback HTTP listeners for the guard tests: they count every accepted connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

Responder = Callable[[BaseHTTPRequestHandler], None]


def ok_responder(handler: BaseHTTPRequestHandler) -> None:
    body = b'{"ok": true}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class CountingServer(HTTPServer):
    """An HTTP server on a loopback address that records connections and request headers."""

    def __init__(self, address: tuple[str, int], family: int, responder: Responder) -> None:
        self.address_family = family
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.responder = responder
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        pair = super().get_request()
        self.connections += 1
        return pair

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: CountingServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers),
             "body": body}
        )
        self.server.responder(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


class Listener:
    """Start/stop a CountingServer in a thread."""

    def __init__(self, host: str = "127.0.0.1", responder: Responder = ok_responder) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = CountingServer((host, 0), family, responder)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self.thread.start()
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
