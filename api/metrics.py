"""The API's Prometheus `/metrics`: workflow-side numbers read from PostgreSQL at scrape time,
beside the API's own HTTP metrics (api/http_metrics.py).

Workers run in other processes (or pods), so the API cannot count their work in memory; a
custom collector asks the database instead, with a statement timeout so a scrape can never
hold the database for long. Must not write anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.errors import QueryCanceled
from sqlalchemy import TextClause, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.http_metrics import init_http_metrics, make_http_metrics

logger = logging.getLogger(__name__)

# Upper bounds in seconds, shared by the step-duration and queue-wait histograms.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0, 60.0, 300.0, 900.0, 3600.0)
_STATEMENT_TIMEOUT_MS = 5000
_LIVE_STATUSES = ("pending", "running", "paused")
_REGISTRY_KEY = "flowyard.metrics_registry"


_INSTANCES_SQL = text(
    "SELECT status, count(*) FROM workflow_instances "
    "WHERE status IN ('pending', 'running', 'paused') GROUP BY status"
)
_STEPS_SQL = text("SELECT step_type, status, count(*) FROM workflow_executions GROUP BY 1, 2")
# `width_bucket(x, bounds)` counts the bounds at or below x. With both negated, that is the
# number of bounds at or above the value: how many of the (cumulative, `le`) buckets hold
# it. One such call per row replaced a filtered count per bucket, 16 of them: the scrape of
# a million steps took 1.2-1.4 s instead of 4.1-4.5 s (in float8, not numeric, too).
_NEGATED_BOUNDS = ("ARRAY[" + ", ".join(repr(-bound) for bound in reversed(BUCKETS))
                   + "]::float8[]")


def _histogram_sql(value: str, counted: str) -> TextClause:
    """Rows of (type, how many buckets hold the value, steps, sum of the values)."""
    return text(f"SELECT step_type, width_bucket(-({value}), {_NEGATED_BOUNDS}), count(*), "
                f"sum({value}) FROM workflow_executions WHERE {counted} GROUP BY 1, 2")


_DURATION_SQL = _histogram_sql(
    "duration_ms::float8 / 1000", "duration_ms IS NOT NULL AND status IN ('completed', 'failed')")
_WAIT_SQL = _histogram_sql("greatest(date_part('epoch', started_at - queued_at), 0)",
                           "started_at IS NOT NULL AND queued_at IS NOT NULL")


def _cumulative(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Per type (in name order): its count, its sum, then each bucket's cumulative count."""
    by_type: dict[str, tuple[list[float], list[int]]] = {}
    for step_type, holding, count, total in rows:
        totals, by_holding = by_type.setdefault(step_type, ([0.0, 0.0], [0] * (len(BUCKETS) + 1)))
        totals[0] += count
        totals[1] += float(total)
        by_holding[holding] += count
    # A value held by k buckets is in the k largest: bucket j (ascending) holds each value
    # that at least len(BUCKETS) - j buckets hold.
    return [(step_type, count, total,
             *(sum(by_holding[len(BUCKETS) - j:]) for j in range(len(BUCKETS))))
            for step_type, ((count, total), by_holding) in sorted(by_type.items())]


def _histogram(name: str, documentation: str, rows: list[Any]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["type"])
    for row in rows:
        step_type, count, total, *cumulative = row
        buckets = [(str(bound), float(n)) for bound, n in zip(BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", float(count)))
        family.add_metric([step_type], buckets, float(total))
    return family


class WorkflowCollector(Collector):
    """Instances, admission limit, steps by type and status, durations and queue waits."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]],
                 max_concurrent_workflows: int) -> None:
        self._session = session
        self._max_concurrent = max_concurrent_workflows

    def collect(self) -> Iterator[Metric]:
        limit = GaugeMetricFamily("flowyard_max_concurrent_workflows",
                                  "MAX_CONCURRENT_WORKFLOWS: instances allowed to run at once")
        limit.add_metric([], float(self._max_concurrent))
        yield limit
        with self._session() as session:
            session.execute(text(f"SET LOCAL statement_timeout = {_STATEMENT_TIMEOUT_MS}"))
            instances = {status: count for status, count in session.execute(_INSTANCES_SQL)}
            steps = _step_rows(session)
        live = GaugeMetricFamily("flowyard_workflow_instances",
                                 "Workflow instances not yet finished, by status",
                                 labels=["status"])
        for status in _LIVE_STATUSES:
            live.add_metric([status], float(instances.get(status, 0)))
        yield live
        yield from _single_gauges(instances)
        read = GaugeMetricFamily("flowyard_step_metrics_read",
                                 "1 if this scrape read the step metrics; 0 if their scans of "
                                 "workflow_executions ran past the statement timeout")
        read.add_metric([], 0.0 if steps is None else 1.0)
        yield read
        if steps is None:
            return
        by_type = GaugeMetricFamily("flowyard_steps", "Steps (workflow_executions) by type and "
                                    "status", labels=["type", "status"])
        for step_type, status, count in steps.by_type_and_status:
            by_type.add_metric([step_type, status], float(count))
        yield by_type
        yield _histogram("flowyard_step_duration_seconds",
                         "Duration of finished steps, by node type", steps.durations)
        yield _histogram("flowyard_step_queue_wait_seconds",
                         "Time from a step being queued to a worker starting it, by node type",
                         steps.waits)


class _StepRows(NamedTuple):
    by_type_and_status: list[Any]
    durations: list[tuple[Any, ...]]
    waits: list[tuple[Any, ...]]


def _step_rows(session: Session) -> _StepRows | None:
    """The step metrics' rows; None when a scan ran past the statement timeout.

    The scans read every step row (a known cost: see deploy/README.md). On a table too large
    for the timeout, the scrape still reports the instance gauges, which are cheap, and says
    the step metrics are missing (`flowyard_step_metrics_read` 0), rather than failing whole.
    """
    try:
        return _StepRows(session.execute(_STEPS_SQL).all(),
                         _cumulative(session.execute(_DURATION_SQL).all()),
                         _cumulative(session.execute(_WAIT_SQL).all()))
    except OperationalError as error:
        if not isinstance(error.orig, QueryCanceled):
            raise
        logger.warning("/metrics: the step scans ran past %d ms; step metrics left out",
                       _STATEMENT_TIMEOUT_MS)
        return None


def _single_gauges(instances: dict[str, int]) -> Iterator[Metric]:
    for status in ("running", "pending"):
        gauge = GaugeMetricFamily(f"flowyard_instances_{status}",
                                  f"Workflow instances currently {status}")
        gauge.add_metric([], float(instances.get(status, 0)))
        yield gauge


def make_registry(session: Callable[[], AbstractContextManager[Session]],
                  max_concurrent_workflows: int) -> CollectorRegistry:
    """A registry of its own per app, so several apps in one process never collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkflowCollector(session, max_concurrent_workflows))
    return registry


def init_metrics(app: Flask, session: Callable[[], AbstractContextManager[Session]],
                 max_concurrent_workflows: int, multiprocess_dir: str | None) -> None:
    """Serve /metrics from the database's numbers and this API's HTTP metrics
    (`api.http_metrics`; summed over processes through `multiprocess_dir`, if given).

    Call once every other request hook is installed.
    """
    registry = make_registry(session, max_concurrent_workflows)
    init_http_metrics(app, make_http_metrics(registry, multiprocess_dir))
    app.extensions[_REGISTRY_KEY] = registry


blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.extensions[_REGISTRY_KEY]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
