"""A reconciler pass counted: what each job handled, the jobs that failed, the pass's time."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from worker.reconciler import PeriodicJobs, reconcile_once
from worker.reconciler_metrics import make_reconciler_metrics


def _broken(_: Any) -> int:
    raise RuntimeError("the job's query failed")


def test_a_pass_counts_what_each_job_returned_and_which_failed() -> None:
    jobs = PeriodicJobs()
    jobs.add("resent", lambda _: 3)
    jobs.add("idle", lambda _: 0)
    jobs.add("broken", _broken)
    jobs.add("quiet", lambda _: None)  # a job that returns no count
    registry = CollectorRegistry()
    metrics = make_reconciler_metrics(registry, [name for name, _ in jobs.jobs])

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    # Every job's series exists from the start, at 0.
    assert sample("flowyard_reconciler_handled_total", job="resent") == 0
    reconcile_once(None, jobs, metrics)  # type: ignore[arg-type]
    reconcile_once(None, jobs, metrics)  # type: ignore[arg-type]
    handled = {job: sample("flowyard_reconciler_handled_total", job=job)
               for job in ("resent", "idle", "broken", "quiet")}
    assert handled == {"resent": 6, "idle": 0, "broken": 0, "quiet": 0}
    failures = {job: sample("flowyard_reconciler_job_failures_total", job=job)
                for job in ("resent", "idle", "broken", "quiet")}
    assert failures == {"resent": 0, "idle": 0, "broken": 2, "quiet": 0}
    assert sample("flowyard_reconciler_pass_duration_seconds_count") == 2
