"""`flowyard worker [-Q queues] [-c N]`: one Celery worker process running node tasks."""

from __future__ import annotations

import logging
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
              help="Worker processes (default: CPUs).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("-n", "--hostname", default=None, help="Node name (default: celery@<host>).")
@metrics_options("the node tasks this worker runs, its pool processes summed")
def worker(queues: str, concurrency: int | None, loglevel: str, hostname: str | None,
           metrics_port: int | None, metrics_address: str) -> None:
    """Run node tasks from the given queues until stopped."""
    from worker.celery_app import all_queues, make_celery
    from worker.runtime import build_runtime

    settings = load_settings()
    check_secret_keys(settings)
    # --loglevel governs Flowyard's own events too, not only Celery's.
    configure_logging(settings, level=_level(loglevel))
    with ExitStack() as stack:
        step_metrics = None
        if metrics_port is not None:
            step_metrics = _serve_metrics(stack, metrics_address, metrics_port)
        # Each pool child runs steps one after another: it keeps its connection between them.
        runtime = build_runtime(settings, hold_connections=True)
        app = make_celery(settings, runtime, step_metrics)
        if settings.worker_heartbeat_file:
            from worker.liveness import install_heartbeat

            install_heartbeat(app, settings.worker_heartbeat_file)
        chosen = queues or ",".join(all_queues(runtime))
        argv = ["worker", "-Q", chosen, f"--loglevel={loglevel}", "-P", "prefork",
                "--without-mingle", "--without-gossip"]
        if concurrency:
            argv += ["-c", str(concurrency)]
        if hostname:
            argv += ["-n", hostname]
        app.worker_main(argv)


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
