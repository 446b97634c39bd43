"""`flowyard scheduler`: the reconciler loop (several may run at once; each pass is idempotent)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from api.commands.log_setup import configure_logging
from api.commands.metrics_setup import metrics_options, port_not_served
from api.commands.settings_loader import load_settings

if TYPE_CHECKING:
    from worker.reconciler import PeriodicJobs
    from worker.reconciler_metrics import ReconcilerMetrics


@click.command("scheduler")
@metrics_options("what each reconciler job handled, the jobs that failed and "
                 "the time of each pass")
def scheduler(metrics_port: int | None, metrics_address: str) -> None:
    """Re-send lost steps, expire leases, fire timers, enforce timeouts, admit instances."""
    from worker.celery_app import make_celery
    from worker.reconciler import default_jobs, run_forever
    from worker.runtime import build_runtime

    settings = load_settings()
    configure_logging(settings)
    jobs = default_jobs()
    metrics = None
    if metrics_port is not None:
        metrics = _serve_metrics(metrics_address, metrics_port, jobs)
    runtime = build_runtime(settings)
    make_celery(settings, runtime)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    click.echo("flowyard scheduler: reconciling every "
               f"{settings.reconcile_interval_seconds}s", err=True)
    run_forever(runtime, jobs, stop, after_pass=_heartbeat(settings.worker_heartbeat_file),
                metrics=metrics)


def _heartbeat(path: str | None) -> Callable[[], None] | None:
    """Touch the heartbeat file after every pass, if there is one: a stuck loop goes stale
    and the liveness probe restarts it."""
    if not path:
        return None
    from worker.liveness import touch_heartbeat

    return lambda: touch_heartbeat(path)


def _serve_metrics(address: str, port: int, jobs: PeriodicJobs) -> ReconcilerMetrics:
    from prometheus_client import CollectorRegistry

    from worker.metrics import serve_registry
    from worker.reconciler_metrics import make_reconciler_metrics

    registry = CollectorRegistry(auto_describe=False)
    metrics = make_reconciler_metrics(registry, [name for name, _ in jobs.jobs])
    try:
        serve_registry(address, port, registry)
    except OSError as error:
        raise port_not_served(address, port, error) from None
    return metrics
