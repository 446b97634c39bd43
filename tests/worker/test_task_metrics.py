"""A node task counted in the worker's metrics: its outcome read from what the delivery did."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import worker.celery_app
from worker.celery_app import make_celery
from worker.dispatch import task_name
from worker.metrics import make_step_metrics, serve_multiprocess_metrics


def _counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(sample.labels["type"], sample.labels["outcome"]): sample.value
            for family in registry.collect() for sample in family.samples
            if sample.name == "flowyard_worker_tasks_total"}


@pytest.mark.parametrize(("happened", "outcome"), [
    ("dict", "succeeded"), ("NodeResult", "succeeded"), ("StepFailure", "failed"),
    ("Suspend", "suspended"), ("stale", "stale"),
])
def test_what_a_delivery_did_is_its_outcome(settings: Any, monkeypatch: pytest.MonkeyPatch,
                                            happened: str, outcome: str) -> None:
    registry = CollectorRegistry()
    app = make_celery(settings, step_metrics=make_step_metrics(registry))
    monkeypatch.setattr(worker.celery_app, "execute_step", lambda *_: happened)
    assert app.tasks[task_name("http")].run(str(uuid.uuid4())) == happened
    assert _counts(registry) == {("http", outcome): 1.0}
    assert registry.get_sample_value("flowyard_worker_task_duration_seconds_count",
                                     {"type": "http"}) == 1.0


def test_a_delivery_that_raises_counts_as_an_error_and_still_raises(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    app = make_celery(settings, step_metrics=make_step_metrics(registry))

    def database_gone(*_: Any) -> str:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(worker.celery_app, "execute_step", database_gone)
    with pytest.raises(ConnectionError):
        app.tasks[task_name("noop")].run(str(uuid.uuid4()))
    assert _counts(registry) == {("noop", "error"): 1.0}


def test_serving_refuses_a_prometheus_client_imported_in_single_process_mode() -> None:
    # This test process imported prometheus-client without PROMETHEUS_MULTIPROC_DIR: the
    # pool children's counts would go nowhere a scrape reads.
    with pytest.raises(RuntimeError, match="imported before its multiprocess directory"):
        serve_multiprocess_metrics("127.0.0.1", 1, "/nonexistent")
