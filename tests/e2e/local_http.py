"""A loopback HTTP server for tests: flaky, slow and counting endpoints (no mocks needed)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class LocalHttpServer:
    """GET /ok, /flaky/<key>?fail=N (500 for the first N calls), /slow/<key>?seconds=S.

    Every request is recorded as (path, Idempotency-Key header).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, path: str) -> int:
        with self.lock:
            return self.calls[path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with owner.lock:
                    owner.calls[parts.path] += 1
                    seen = owner.calls[parts.path]
                    owner.requests.append((parts.path, self.headers.get("Idempotency-Key")))
                status = 200
                if parts.path.startswith("/flaky/"):
                    status = 500 if seen <= int(query.get("fail", ["0"])[0]) else 200
                elif parts.path.startswith("/slow/"):
                    time.sleep(float(query.get("seconds", ["1"])[0]))
                body = json.dumps({"path": parts.path, "call": seen}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

        return Handler
