"""A worker's own Prometheus metrics: node tasks run, by type and outcome, and how long each
took in the worker; served over HTTP from the worker's main process (and how the scheduler
serves its own, `worker.reconciler_metrics`).

The API's `/metrics` reads the workflow side from PostgreSQL at scrape time; these are
counted where the work happens, so they cost nothing to scrape however many steps there
are. Under prefork the tasks run in pool children: each child counts in prometheus-client's
multiprocess files (the directory `flowyard worker --metrics-port` makes for the run), and
a scrape of the main process sums them all. Must not touch the database or the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector

from worker.results import Suspend
from worker.step_run import StepFailure

# Upper bounds in seconds: from a pure step's few milliseconds to a step near its timeout.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0, 60.0, 300.0, 900.0, 3600.0)

# What `worker.orchestrator.execute_step` returns, read as a task's outcome: the handler's
# own outcome, or `stale` when the delivery found nothing to run (a duplicate, or a step
# already done or cancelled). Any other value is a handler's result: it succeeded.
_OUTCOMES = {StepFailure.__name__: "failed", Suspend.__name__: "suspended", "stale": "stale"}
SUCCEEDED = "succeeded"
# The delivery raised (the database or the broker failed). Celery acks it anyway; the
# reconciler sends the step again, or frees it once its lease ends.
RAISED = "error"


@dataclass(frozen=True)
class StepMetrics:
    tasks: Counter
    duration: Histogram

    def observe(self, step_type: str, happened: str | None, seconds: float) -> None:
        """Count one node task: `happened` is what `execute_step` returned, None if it raised."""
        outcome = RAISED if happened is None else _OUTCOMES.get(happened, SUCCEEDED)
        self.tasks.labels(step_type, outcome).inc()
        self.duration.labels(step_type).observe(seconds)


def make_step_metrics(registry: CollectorRegistry | None) -> StepMetrics:
    """The metrics, registered in `registry`; None: counted in the multiprocess directory
    (prometheus-client must have been imported with PROMETHEUS_MULTIPROC_DIR set)."""
    return StepMetrics(
        tasks=Counter("flowyard_worker_tasks", "Node tasks this worker ran, by node type and "
                      "outcome (succeeded, failed, suspended, stale, error)",
                      ["type", "outcome"], registry=registry),
        duration=Histogram("flowyard_worker_task_duration_seconds",
                           "Time a node task took in the worker: claim, handler, record and "
                           "dispatch of the next steps", ["type"], buckets=BUCKETS,
                           registry=registry),
    )


def serve_multiprocess_metrics(address: str, port: int, multiprocess_dir: str) -> StepMetrics:
    """Serve the sum of every process's metrics on `address`:`port` from a thread of this
    process, and return the metrics this process and the children it forks count in.

    Raises:
        RuntimeError: prometheus-client was imported before PROMETHEUS_MULTIPROC_DIR was
            set, so the children's counts would never reach the files a scrape reads.
        OSError: the address cannot be listened on.
    """
    if values.ValueClass is values.MutexValue:
        raise RuntimeError("prometheus-client was imported before its multiprocess "
                           "directory was set: worker metrics would stay empty")
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=multiprocess_dir)
    serve_registry(address, port, registry)
    return make_step_metrics(None)


def serve_registry(address: str, port: int, registry: CollectorRegistry) -> None:
    """Serve `registry` at `address`:`port` from a daemon thread of this process.

    Raises:
        OSError: the address cannot be listened on.
    """
    start_http_server(port, addr=address, registry=registry)
