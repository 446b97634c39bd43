"""A small closed-loop HTTP load generator, run as its own process by the API scenario.

    python -m bench.load URL TOKEN METHOD PATH BODY_JSON SECONDS THREADS
prints one JSON line: requests, errors, requests_per_second, p50_ms, p99_ms.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

from bench.stats import percentile


def _worker(url: str, token: str, method: str, path: str, body: bytes | None, stop_at: float,
            latencies: list[float], errors: list[int]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status < 400
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            ok = False
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors.append(1)
    conn.close()


def main(argv: list[str]) -> None:
    url, token, method, path, body_json, seconds, threads = argv
    body = body_json.encode() if body_json != "-" else None
    latencies: list[float] = []
    errors: list[int] = []
    started = time.monotonic()
    stop_at = started + float(seconds)
    pool = [threading.Thread(target=_worker, args=(url, token, method, path, body, stop_at,
                                                   latencies, errors))
            for _ in range(int(threads))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    print(json.dumps({
        "requests": len(latencies), "errors": len(errors),
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
