"""`flowyard worker [-Q queues] [-c N] [-P pool]`: one Celery worker running node tasks."""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from api.commands.log_setup import configure_logging
from api.commands.metrics_setup import metrics_options, multiprocess_metrics, port_not_served
from api.commands.secrets import check_secret_keys
from api.commands.settings_loader import load_settings

if TYPE_CHECKING:
    from worker.metrics import StepMetrics


@click.command("worker")
@click.option(
    "-Q", "--queues", default="", help="Comma-separated queues (default: every node type).",
)
@click.option("-c", "--concurrency", type=int, default=None,
              help="Steps run at once: pool processes, or threads (default: CPUs).")
@click.option("-P", "--pool", type=click.Choice(["prefork", "threads"]), default="prefork",
              show_default=True,
              help="Run steps in child processes, or in threads of this one: only for the "
                   "queues of pure node types (trigger, noop, transform, condition), which "
                   "cannot hang. Threads save the hand-off to a child (see deploy/README.md).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("-n", "--hostname", default=None, help="Node name (default: celery@<host>).")
@metrics_options("the node tasks this worker runs, its pool processes summed")
def worker(queues: str, concurrency: int | None, pool: str, loglevel: str,
           hostname: str | None, metrics_port: int | None, metrics_address: str) -> None:
    """Run node tasks from the given queues until stopped."""
    from worker.celery_app import make_celery
    from worker.plugins import load_node_types
    from worker.pools import THREADS, PoolChoiceError, all_queues, check_pool
    from worker.runtime import build_runtime

    settings = load_settings()
    check_secret_keys(settings)
    # --loglevel governs Flowyard's own events too, not only Celery's.
    configure_logging(settings, level=_level(loglevel))
    node_types = load_node_types()
    chosen = [name.strip() for name in queues.split(",") if name.strip()] or all_queues(node_types)
    try:
        check_pool(pool, chosen, node_types)
    except PoolChoiceError as error:
        raise click.UsageError(str(error)) from None
    slots = concurrency or os.cpu_count() or 1
    with ExitStack() as stack:
        step_metrics = None
        if metrics_port is not None:
            step_metrics = _serve_metrics(stack, metrics_address, metrics_port)
        # Each pool child, or thread, runs steps one after another: it keeps its connection
        # between them. Threads share this process's pool: room for one held connection and
        # one session's each.
        runtime = build_runtime(settings, node_types, hold_connections=True,
                                pool_size=max(5, 2 * slots) if pool == THREADS else 5)
        app = make_celery(settings, runtime, step_metrics)
        if settings.worker_heartbeat_file:
            from worker.liveness import install_heartbeat

            install_heartbeat(app, settings.worker_heartbeat_file)
        if pool == THREADS:
            _freeze_heap_when_ready()
        argv = ["worker", "-Q", ",".join(chosen), f"--loglevel={loglevel}", "-P", pool,
                "-c", str(slots), "--without-mingle", "--without-gossip"]
        if hostname:
            argv += ["-n", hostname]
        app.worker_main(argv)


def _freeze_heap_when_ready() -> None:
    """A prefork worker freezes its startup heap before it forks each child
    (`worker.celery_app`); one that forks none, once it is ready to take steps."""
    from celery.signals import worker_ready

    from worker.heap import freeze_startup_heap

    worker_ready.connect(lambda **_: freeze_startup_heap(), weak=False,
                         dispatch_uid="flowyard.freeze_startup_heap.threads")


def _serve_metrics(stack: ExitStack, address: str, port: int) -> StepMetrics:
    """Start serving the worker's metrics, with a directory for this run (removed when
    `stack` closes) where the pool children count."""
    metrics_dir = stack.enter_context(multiprocess_metrics(prefix="flowyard-worker-metrics-"))
    # Only now: prometheus-client takes its mode from that directory when first imported.
    from worker.metrics import serve_multiprocess_metrics

    try:
        return serve_multiprocess_metrics(address, port, metrics_dir)
    except OSError as error:
        raise port_not_served(address, port, error) from None


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise click.BadParameter(f"unknown log level {name!r}", param_hint="--loglevel")
    return level
