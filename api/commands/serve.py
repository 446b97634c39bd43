"""`flowyard api` (the Flask app under gunicorn) and `flowyard flower` (Celery monitoring).

One process each, configured only by the environment (CONTRACT §9); they must not start
anything else (that is `flowyard up`).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import click

from api.commands.metrics_setup import multiprocess_metrics
from api.commands.secrets import check_secret_keys
from api.commands.settings_loader import load_settings
from models.settings import Settings, SettingsError


def _require_urls(settings: Settings) -> None:
    try:
        settings.require_database_url()
        settings.require_broker_url()
    except SettingsError as error:
        raise click.ClickException(f"configuration error: {error}") from None


def _gunicorn_application(settings: Settings, options: dict[str, Any],
                          metrics_dir: str | None, event_streams: int) -> Any:
    """A gunicorn application that builds the Flask app from `settings` in each worker
    (their HTTP metrics summed through `metrics_dir`, see `api.commands.metrics_setup`; at most
    `event_streams` of its threads serving live event streams, see `api.stream_slots`)."""
    from gunicorn.app.base import BaseApplication

    threads = int(options["threads"])

    class FlowyardAPI(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                # Settings newer than the installed gunicorn are skipped, not fatal.
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from api.app import create_app
            from models.db import make_engine, make_session_factory
            from worker.celery_app import make_celery

            # A serving thread may hold its autocommit connection (api.context) and a
            # session's at once: room for both in every thread, or a busy process waits
            # on its own pool.
            engine = make_engine(settings, pool_size=max(5, threads),
                                 max_overflow=max(10, threads))
            # The API only sends step ids to the broker; it never runs tasks itself.
            return create_app(settings, session_factory=make_session_factory(engine),
                              celery_app=make_celery(settings), metrics_dir=metrics_dir,
                              event_streams=event_streams)

    return FlowyardAPI()


def gunicorn_options(host: str, port: int, processes: int, threads: int,
                     timeout: int) -> dict[str, Any]:
    """gunicorn's settings for `flowyard api`."""
    return {
        "bind": f"{host}:{port}",
        "workers": processes,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": timeout,
        "graceful_timeout": 30,
        "accesslog": "-",
        "errorlog": "-",
        "proc_name": "flowyard-api",
        # Load the app in each worker, after fork: no database pool crosses a fork.
        "preload_app": False,
        # Once each worker has built the app: full collections skip its startup heap, and
        # a stop ends its event streams.
        "post_worker_init": _after_worker_init,
        # gunicorn's control socket lives at one path per user: a second API on the same
        # machine (another `flowyard up`, a test) would take it over. We do not use it.
        "control_socket_disable": True,
    }


def _after_worker_init(worker: Any) -> None:
    from worker.heap import freeze_startup_heap

    _end_streams_on_stop(worker)
    freeze_startup_heap()


def _end_streams_on_stop(worker: Any) -> None:
    """On SIGTERM, the worker's open event streams end at their next poll, then gunicorn
    stops as it would have.

    gunicorn's graceful stop waits for every open connection, up to `graceful_timeout`; a
    stream lasts up to an hour, so a single watcher held every stop (`flowyard up`, a
    rolling update) for that whole timeout. Runs in the worker's main thread, after
    gunicorn has installed its own handler (`Worker.init_process`), which it chains to.
    """
    from api.stream_slots import stream_slots_of

    gunicorn_stop = signal.getsignal(signal.SIGTERM)
    if not callable(gunicorn_stop):
        return  # not in a gunicorn worker: no stop of its to chain to
    slots = stream_slots_of(worker.wsgi)

    def stop(signum: int, frame: Any) -> None:
        slots.end_all()
        gunicorn_stop(signum, frame)

    signal.signal(signal.SIGTERM, stop)


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", "processes", default=2, show_default=True, type=click.IntRange(1),
              help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1),
              help="Threads per worker process.")
@click.option("--event-streams", type=click.IntRange(0),
              help="Of each process's threads, how many may serve live event streams (GET "
                   ".../events) at once; one more is answered 503. Below --threads, so "
                   "requests always have a thread.  [default: half of --threads]")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(1),
              help="Seconds before a silent gunicorn worker is restarted.")
def api(host: str, port: int, processes: int, threads: int, event_streams: int | None,
        timeout: int) -> None:
    """Run the REST API under gunicorn (a production WSGI server)."""
    if event_streams is None:
        event_streams = threads // 2
    elif event_streams >= threads:
        # An open stream holds its thread while it lasts (up to an hour): with every thread
        # streaming, nothing else would be answered, health probes included.
        raise click.UsageError(f"--event-streams ({event_streams}) must be below --threads "
                               f"({threads}), so requests always have a thread")
    settings = load_settings()
    _require_urls(settings)
    check_secret_keys(settings)
    options = gunicorn_options(host, port, processes, threads, timeout)
    # gunicorn forks its workers before they import prometheus-client (they build the app).
    with multiprocess_metrics(prefix="flowyard-api-metrics-") as metrics_dir:
        _gunicorn_application(settings, options, metrics_dir, event_streams).run()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True, type=click.IntRange(1, 65535))
@click.option("--unauthenticated-api", is_flag=True,
              help="Serve Flower's /api without authentication (local use only).")
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(address: str, port: int, unauthenticated_api: bool,
           flower_args: tuple[str, ...]) -> None:
    """Run Flower on the Flowyard broker; extra arguments go to Flower (e.g. --basic-auth)."""
    settings = load_settings()
    try:
        settings.require_broker_url()
    except SettingsError as error:
        raise click.ClickException(f"configuration error: {error}") from None
    if unauthenticated_api:
        # Flower reads this switch from its own environment variable only.
        os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"
    from celery import Celery

    from worker.celery_app import celery_config

    # Flower only watches the broker: no task runtime, so it needs no database credentials.
    celery = Celery("flowyard", set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.start(["flower", f"--address={address}", f"--port={port}", *flower_args])
