"""`flowyard scheduler`: the reconciler loop (several may run at once; each pass is idempotent)."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from api.commands.log_setup import configure_logging
from api.commands.settings_loader import load_settings


@click.command("scheduler")
def scheduler() -> None:
    """Re-send lost steps, expire leases, fire timers, enforce timeouts, admit instances."""
    from worker.celery_app import make_celery
    from worker.reconciler import default_jobs, run_forever
    from worker.runtime import build_runtime

    settings = load_settings()
    configure_logging(settings)
    runtime = build_runtime(settings)
    make_celery(settings, runtime)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    click.echo("flowyard scheduler: reconciling every "
               f"{settings.reconcile_interval_seconds}s", err=True)
    heartbeat = settings.worker_heartbeat_file
    if heartbeat:
        from worker.liveness import touch_heartbeat

        # Touched after every pass: a stuck loop goes stale and the liveness probe restarts it.
        run_forever(runtime, default_jobs(), stop, after_pass=lambda: touch_heartbeat(heartbeat))
    else:
        run_forever(runtime, default_jobs(), stop)
