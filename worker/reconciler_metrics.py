"""The scheduler's own Prometheus metrics: what each reconciler job repaired, which jobs
failed, and how long a pass took.

The reconciler is where lost work is found again: a step re-sent because nobody claimed it,
a lease that ran out because its worker died. Counting those makes them something to alert
on, not only log lines. One process (the scheduler does not fork), so a plain registry.
Must not touch the database or the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# Upper bounds in seconds of a pass: every job of it, run one after another.
PASS_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                   30.0, 60.0)


@dataclass(frozen=True)
class ReconcilerMetrics:
    handled: Counter
    failures: Counter
    passes: Histogram

    def job_done(self, job: str, result: object) -> None:
        """Count what a job says it handled (the number it returned, if it returned one)."""
        if isinstance(result, int) and not isinstance(result, bool) and result > 0:
            self.handled.labels(job).inc(result)

    def job_failed(self, job: str) -> None:
        self.failures.labels(job).inc()

    def pass_done(self, seconds: float) -> None:
        self.passes.observe(seconds)


def make_reconciler_metrics(registry: CollectorRegistry,
                            jobs: Iterable[str]) -> ReconcilerMetrics:
    """The metrics, registered in `registry`, each job's series present from the start at 0
    (so that `rate()` and `increase()` see the first one it counts)."""
    metrics = ReconcilerMetrics(
        handled=Counter("flowyard_reconciler_handled", "What each reconciler job handled: "
                        "steps re-sent or released, timers fired, instances admitted or "
                        "timed out, and so on, by job", ["job"], registry=registry),
        failures=Counter("flowyard_reconciler_job_failures", "Reconciler jobs that raised "
                         "(logged as reconciler.job_failed); the pass goes on", ["job"],
                         registry=registry),
        passes=Histogram("flowyard_reconciler_pass_duration_seconds", "Time a reconciler "
                         "pass took, every job of it", buckets=PASS_BUCKETS,
                         registry=registry),
    )
    for job in jobs:
        metrics.handled.labels(job)
        metrics.failures.labels(job)
    return metrics
