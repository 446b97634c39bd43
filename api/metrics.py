"""The API's Prometheus `/metrics`: workflow-side numbers read from PostgreSQL at scrape time.

Workers run in other processes (or pods), so the API cannot count their work in memory; a
custom collector asks the database instead, with a statement timeout so a scrape can never
hold the database for long. Must not write anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session

# Upper bounds in seconds, shared by the step-duration and queue-wait histograms.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0, 60.0, 300.0, 900.0, 3600.0)
_STATEMENT_TIMEOUT_MS = 5000
_LIVE_STATUSES = ("pending", "running", "paused")
_REGISTRY_KEY = "flowyard.metrics_registry"


def _bucket_columns(expression: str, prefix: str) -> str:
    return ", ".join(
        f"count(*) FILTER (WHERE {expression} <= {bound}) AS {prefix}{index}"
        for index, bound in enumerate(BUCKETS)
    )


_INSTANCES_SQL = text(
    "SELECT status, count(*) FROM workflow_instances "
    "WHERE status IN ('pending', 'running', 'paused') GROUP BY status"
)
_STEPS_SQL = text("SELECT step_type, status, count(*) FROM workflow_executions GROUP BY 1, 2")
_DURATION = "duration_ms / 1000.0"
_DURATION_SQL = text(
    f"SELECT step_type, count(*), coalesce(sum({_DURATION}), 0), "
    f"{_bucket_columns(_DURATION, 'b')} FROM workflow_executions "
    "WHERE duration_ms IS NOT NULL AND status IN ('completed', 'failed') GROUP BY step_type"
)
_WAIT = "greatest(EXTRACT(EPOCH FROM (started_at - queued_at)), 0)"
_WAIT_SQL = text(
    f"SELECT step_type, count(*), coalesce(sum({_WAIT}), 0), "
    f"{_bucket_columns(_WAIT, 'b')} FROM workflow_executions "
    "WHERE started_at IS NOT NULL AND queued_at IS NOT NULL GROUP BY step_type"
)


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
            steps = session.execute(_STEPS_SQL).all()
            durations = session.execute(_DURATION_SQL).all()
            waits = session.execute(_WAIT_SQL).all()
        live = GaugeMetricFamily("flowyard_workflow_instances",
                                 "Workflow instances not yet finished, by status",
                                 labels=["status"])
        for status in _LIVE_STATUSES:
            live.add_metric([status], float(instances.get(status, 0)))
        yield live
        yield from _single_gauges(instances)
        by_type = GaugeMetricFamily("flowyard_steps", "Steps (workflow_executions) by type and "
                                    "status", labels=["type", "status"])
        for step_type, status, count in steps:
            by_type.add_metric([step_type, status], float(count))
        yield by_type
        yield _histogram("flowyard_step_duration_seconds",
                         "Duration of finished steps, by node type", list(durations))
        yield _histogram("flowyard_step_queue_wait_seconds",
                         "Time from a step being queued to a worker starting it, by node type",
                         list(waits))


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


blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions.get(_REGISTRY_KEY)
    if registry is None:
        from api.context import app_state

        state = app_state()
        registry = make_registry(state.session_factory, state.settings.max_concurrent_workflows)
        current_app.extensions[_REGISTRY_KEY] = registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
