"""The API's /metrics collector reports instances, steps and histograms from PostgreSQL."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api import metrics
from api.metrics import make_registry
from models.instance import WorkflowExecution, WorkflowInstance
from models.workflow import Workflow


def _samples(session: Session, limit: int = 7) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                       float]:
    registry = make_registry(lambda: nullcontext(session), limit)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _seed(session: Session) -> None:
    workflow = Workflow(name="metrics", workflow_data={"nodes": [], "edges": []})
    session.add(workflow)
    session.flush()
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    running = WorkflowInstance(workflow_id=workflow.id, status="running")
    session.add_all([running, WorkflowInstance(workflow_id=workflow.id, status="pending"),
                     WorkflowInstance(workflow_id=workflow.id, status="pending"),
                     WorkflowInstance(workflow_id=workflow.id, status="completed")])
    session.flush()
    steps = [
        # (node, type, status, duration_ms, queue wait seconds)
        ("a", "http", "completed", 40, 0.02),
        ("b", "http", "completed", 3000, 0.2),
        ("c", "http", "failed", 700, 20.0),
        ("d", "noop", "running", None, 0.001),
        ("e", "noop", "pending", None, None),
    ]
    for node, step_type, status, duration, wait in steps:
        queued = t0 if wait is not None else None
        started = t0 + timedelta(seconds=wait) if wait is not None else None
        session.add(WorkflowExecution(instance_id=running.id, node_id=node, step_type=step_type,
                                      status=status, duration_ms=duration, queued_at=queued,
                                      started_at=started))
    session.flush()


def test_metrics_report_instances_limit_and_steps(db_session: Session) -> None:
    before = _samples(db_session)
    _seed(db_session)
    after = _samples(db_session)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert after[("flowyard_max_concurrent_workflows", ())] == 7
    assert grew("flowyard_instances_running") == 1
    assert grew("flowyard_instances_pending") == 2
    assert grew("flowyard_workflow_instances", status="pending") == 2
    assert grew("flowyard_steps", type="http", status="completed") == 2
    assert grew("flowyard_steps", type="http", status="failed") == 1
    assert grew("flowyard_steps", type="noop", status="pending") == 1


def test_metrics_histograms_bucket_durations_and_queue_waits(db_session: Session) -> None:
    before = _samples(db_session)
    _seed(db_session)
    after = _samples(db_session)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    duration = "flowyard_step_duration_seconds"
    # Finished http steps took 0.04 s, 3 s and 0.7 s; running/pending steps are not counted.
    assert grew(f"{duration}_count", type="http") == 3
    assert grew(f"{duration}_bucket", type="http", le="0.05") == 1
    assert grew(f"{duration}_bucket", type="http", le="1.0") == 2
    assert grew(f"{duration}_bucket", type="http", le="5.0") == 3
    assert abs(grew(f"{duration}_sum", type="http") - 3.74) < 1e-6

    wait = "flowyard_step_queue_wait_seconds"
    assert grew(f"{wait}_count", type="http") == 3
    assert grew(f"{wait}_bucket", type="http", le="0.25") == 2
    assert grew(f"{wait}_bucket", type="http", le="10.0") == 2
    assert grew(f"{wait}_bucket", type="http", le="+Inf") == 3
    assert grew(f"{wait}_count", type="noop") == 1
    # Running and pending steps have no duration yet.
    assert after.get((f"{duration}_count", (("type", "noop"),)), 0.0) == before.get(
        (f"{duration}_count", (("type", "noop"),)), 0.0)


def test_a_value_on_a_bucket_bound_is_in_that_bucket_and_one_above_all_only_in_inf(
        db_session: Session) -> None:
    before = _samples(db_session)
    workflow = Workflow(name="metrics bounds", workflow_data={"nodes": [], "edges": []})
    db_session.add(workflow)
    db_session.flush()
    instance = WorkflowInstance(workflow_id=workflow.id, status="running")
    db_session.add(instance)
    db_session.flush()
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    # (duration ms, queue wait s): on the 0.05 s and 1 s bounds, then past the last (3600 s).
    for node, duration, wait in (("on", 50, 1.0), ("past", 7_200_000, 7_200.0)):
        db_session.add(WorkflowExecution(
            instance_id=instance.id, node_id=node, step_type="bounds", status="completed",
            duration_ms=duration, queued_at=t0, started_at=t0 + timedelta(seconds=wait)))
    db_session.flush()
    after = _samples(db_session)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    duration, wait = "flowyard_step_duration_seconds", "flowyard_step_queue_wait_seconds"
    assert grew(f"{duration}_bucket", type="bounds", le="0.025") == 0
    assert grew(f"{duration}_bucket", type="bounds", le="0.05") == 1
    assert grew(f"{duration}_bucket", type="bounds", le="3600.0") == 1
    assert grew(f"{duration}_bucket", type="bounds", le="+Inf") == 2
    assert abs(grew(f"{duration}_sum", type="bounds") - 7200.05) < 1e-6
    assert grew(f"{wait}_bucket", type="bounds", le="0.5") == 0
    assert grew(f"{wait}_bucket", type="bounds", le="1.0") == 1
    assert grew(f"{wait}_bucket", type="bounds", le="3600.0") == 1
    assert grew(f"{wait}_count", type="bounds") == 2


def test_step_scans_past_the_timeout_leave_the_step_metrics_out_not_the_scrape(
        db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def scrape() -> dict[str, float]:
        registry = make_registry(lambda: Session(db_engine), 7)
        return {sample.name: sample.value
                for family in text_string_to_metric_families(generate_latest(registry).decode())
                for sample in family.samples}

    assert scrape()["flowyard_step_metrics_read"] == 1.0
    # As a table too large to scan within the timeout: the first step scan sleeps past it.
    monkeypatch.setattr(metrics, "_STATEMENT_TIMEOUT_MS", 300)
    monkeypatch.setattr(metrics, "_STEPS_SQL",
                        text("SELECT 'noop', 'completed', 1 FROM pg_sleep(5)"))
    samples = scrape()
    assert samples["flowyard_step_metrics_read"] == 0.0
    assert samples["flowyard_max_concurrent_workflows"] == 7.0
    assert "flowyard_instances_running" in samples
    assert not any(name.startswith(("flowyard_steps", "flowyard_step_duration"))
                   for name in samples)
