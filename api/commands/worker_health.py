"""`flowyard worker-health`: the worker liveness probe; reads a heartbeat file, never the broker."""

from __future__ import annotations

import click

from api.commands.settings_loader import load_settings
from worker.liveness import HeartbeatError, check_heartbeat


@click.command("worker-health")
@click.option(
    "--file",
    "path",
    default=None,
    help="Heartbeat file the worker touches (default: FLOWYARD_WORKER_HEARTBEAT_FILE).",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Seconds after which an untouched file means the worker is stuck.",
)
def worker_health(path: str | None, max_age: float) -> None:
    """Exit 0 if the worker's heartbeat file is fresh, 1 if it is missing or stale."""
    if path is None:
        path = load_settings().worker_heartbeat_file
    if not path:
        raise click.UsageError("give --file or set FLOWYARD_WORKER_HEARTBEAT_FILE")
    try:
        beat = check_heartbeat(path, max_age)
    except HeartbeatError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"ok: {beat.path} touched {beat.age_seconds:.1f}s ago")
