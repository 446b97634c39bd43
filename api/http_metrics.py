"""The API's own HTTP metrics: requests and their latency by method, route and status.

Each gunicorn process counts what it serves; with a multiprocess directory (`flowyard api`
makes one per run, see api/commands/serve.py) every process writes its counts there and a
scrape of any process reports the sum over all of them, prometheus-client's multiprocess
mode. Without one (the Flask app in a test, or any single process) the counts stay in the
process. Labels are the route's rule, never the raw path, so ids cannot grow the series.
Must not touch the database, the broker or the response.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

_EXTENSION_KEY = "flowyard.http_metrics"
# Methods outside this set (anything a client may invent) share one label value.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


@dataclass(frozen=True)
class HttpMetrics:
    requests: Counter
    duration: Histogram


def make_http_metrics(registry: CollectorRegistry, multiprocess_dir: str | None) -> HttpMetrics:
    """The metrics, reported through `registry`.

    With `multiprocess_dir`, prometheus-client must have been imported with
    PROMETHEUS_MULTIPROC_DIR naming the same directory (it reads that variable itself, once):
    the values then live in its files, and `registry` reads every process's files. Registering
    the metrics in `registry` too would report this process's counts twice.
    """
    own: CollectorRegistry | None = registry
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, path=multiprocess_dir)
        own = None
    return HttpMetrics(
        requests=Counter("flowyard_http_requests", "HTTP requests the API answered",
                         ["method", "route", "status"], registry=own),
        duration=Histogram("flowyard_http_request_duration_seconds",
                           "Time from a request reaching the app to its answer being ready "
                           "(a streamed body is not included)", ["method", "route"],
                           registry=own),
    )


def _start_clock() -> None:
    g.http_started = time.perf_counter()


def _observe(response: Response) -> Response:
    metrics: HttpMetrics = current_app.extensions[_EXTENSION_KEY]
    method = request.method if request.method in _METHODS else "other"
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    metrics.requests.labels(method, route, str(response.status_code)).inc()
    started = g.get("http_started")
    if started is not None:
        metrics.duration.labels(method, route).observe(time.perf_counter() - started)
    return response


def init_http_metrics(app: Flask, metrics: HttpMetrics) -> None:
    """Count every request: call once every other hook is installed.

    The clock starts before any other hook (authentication and rate limits included) and
    stops once the answer is final: Flask runs `after_request` hooks in reverse order, so the
    first in the list runs last.
    """
    app.extensions[_EXTENSION_KEY] = metrics
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)
    app.after_request_funcs.setdefault(None, []).insert(0, _observe)
