"""`flowyard worker [-Q queues] [-c N]`: one Celery worker process running node tasks."""

from __future__ import annotations

import logging

import click

from api.commands.log_setup import configure_logging
from api.commands.secrets import check_secret_keys
from api.commands.settings_loader import load_settings


@click.command("worker")
@click.option(
    "-Q", "--queues", default="", help="Comma-separated queues (default: every node type).",
)
@click.option("-c", "--concurrency", type=int, default=None,
              help="Worker processes (default: CPUs).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("-n", "--hostname", default=None, help="Node name (default: celery@<host>).")
def worker(queues: str, concurrency: int | None, loglevel: str, hostname: str | None) -> None:
    """Run node tasks from the given queues until stopped."""
    from worker.celery_app import all_queues, make_celery
    from worker.runtime import build_runtime

    settings = load_settings()
    check_secret_keys(settings)
    # --loglevel governs Flowyard's own events too, not only Celery's.
    configure_logging(settings, level=_level(loglevel))
    # Each pool child runs steps one after another: it keeps its connection between them.
    runtime = build_runtime(settings, hold_connections=True)
    app = make_celery(settings, runtime)
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


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise click.BadParameter(f"unknown log level {name!r}", param_hint="--loglevel")
    return level
