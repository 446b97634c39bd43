"""`flowyard up`: the whole platform on one machine, on embedded or given PostgreSQL and Redis.

Owns the start order, the printed URLs and the first admin token; process handling is
`api.supervisor`'s and the embedded servers are `api.embedded`'s. Children get their
configuration only through the environment of CONTRACT §9.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from api.commands.settings_loader import load_settings
from api.embedded import (
    DataDir,
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedRedis,
    ensure_secret_key,
    lock_data_dir,
    prepare_data_dir,
)
from api.supervisor import Supervisor, SupervisorError
from models.settings import Settings

_READY_TIMEOUT_SECONDS = 120.0
# Workers finish the steps they hold before exiting (Celery warm shutdown); this bounds it.
_STOP_TIMEOUT_SECONDS = 60.0


class StartupError(click.ClickException):
    """`flowyard up` cannot start; the message is one line saying what to do."""


def flowyard_argv(*args: str) -> list[str]:
    """The command line that runs `flowyard <args>` with this very interpreter."""
    bootstrap = "import sys; from api.cli import main; sys.argv[0] = 'flowyard'; main()"
    return [sys.executable, "-c", bootstrap, *args]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_ports(ports: dict[str, int], host: str) -> None:
    for option, port in ports.items():
        if port_in_use(port, host):
            raise StartupError(
                f"port {port} is already in use: stop what listens there or pass "
                f"{option} with a free port"
            )


class Platform:
    """The embedded servers and the children of one `flowyard up`, stopped in reverse order."""

    def __init__(self, data: DataDir) -> None:
        self.data = data
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.supervisor = Supervisor(log_dir=data.logs)

    def stop(self) -> None:
        self.supervisor.stop(timeout=_STOP_TIMEOUT_SECONDS)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _service_env(platform: Platform, settings: Settings) -> dict[str, str]:
    """The environment of every child: ours, plus the URLs of the embedded servers.

    Without FLOWYARD_SECRET_KEYS the data directory's own key is used (made once), so secrets
    work on a first start; the key itself is never printed.
    """
    env = dict(os.environ)
    # `up` runs Flower next to the workers: let it see every task from the first one.
    env.setdefault("FLOWYARD_TASK_EVENTS", "always")
    if not settings.secret_keys:
        env["FLOWYARD_SECRET_KEYS"] = ensure_secret_key(platform.data)
    if not settings.database_url:
        platform.postgres = EmbeddedPostgres(platform.data)
        env["DATABASE_URL"] = platform.postgres.start()
    if not settings.celery_broker_url:
        platform.redis = EmbeddedRedis(platform.data, free_port())
        env["REDIS_URL"] = env["CELERY_BROKER_URL"] = platform.redis.start()
    return env


def _migrate(database_url: str) -> None:
    from alembic.util.exc import CommandError

    from migrations import runner

    try:
        runner.upgrade(database_url)
    except CommandError as error:
        # An unknown revision in the database means a newer Flowyard wrote it.
        raise StartupError(
            f"the database was migrated by another Flowyard version ({error}); "
            "run that version, or use another --data-dir / DATABASE_URL"
        ) from None
    from api.templates_seed import install_library

    # A fresh install carries the built-in template library (inserted once per database).
    install_library(Settings(database_url=database_url))


def _first_admin_token(database_url: str) -> str | None:
    """On the first start (no token at all yet), create an admin token; None otherwise."""
    from sqlalchemy import func, select

    from api.auth import issue_token
    from models.db import make_engine, make_session_factory, transaction
    from models.security import ApiToken

    engine = make_engine(Settings(database_url=database_url), pool_size=1, max_overflow=0)
    try:
        with transaction(make_session_factory(engine)) as session:
            # Serialise two `up`s racing on one database: only one creates the token.
            session.execute(select(func.pg_advisory_xact_lock(0x466C6F77)))
            if session.scalar(select(func.count()).select_from(ApiToken)):
                return None
            _, token = issue_token(session, name="admin (flowyard up)", roles=["admin"],
                                   created_by="flowyard up")
            return token
    finally:
        engine.dispose()


def _start_children(platform: Platform, env: dict[str, str], port: int, flower_port: int,
                    workers: int, host: str) -> None:
    start = platform.supervisor.start
    start("api", flowyard_argv("api", "--host", host, "--port", str(port)), env)
    for index in range(1, workers + 1):
        start(f"worker-{index}", flowyard_argv("worker", "-n", f"worker{index}@%h"), env)
    start("scheduler", flowyard_argv("scheduler"), env)
    start("flower", flowyard_argv("flower", "--address", host, "--port", str(flower_port),
                                  "--unauthenticated-api"), env)


def _wait_ready(platform: Platform, urls: list[str], stop: threading.Event) -> None:
    """Wait until every URL answers 200 (or a child dies, or Ctrl-C, or the deadline)."""
    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    pending = list(urls)
    while pending and time.monotonic() < deadline and not stop.is_set():
        _raise_if_child_exited(platform)
        if _answers_ok(pending[0]):
            pending.pop(0)
            continue
        stop.wait(0.2)
    if pending and not stop.is_set():
        raise StartupError(f"{pending[0]} did not become ready; see {platform.data.logs}")


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _raise_if_child_exited(platform: Platform) -> None:
    child = platform.supervisor.first_exited()
    if child is not None:
        raise StartupError(
            f"{child.name} exited with code {child.process.returncode}; see {child.log_path}"
        )


@contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into `stop` while the block runs, then restore the handlers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Callable[[int, FrameType | None], object] | int | None] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_banner(host: str, port: int, flower_port: int, data: DataDir, platform: Platform,
                  token: str | None) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    api_url = f"http://{shown}:{port}"
    click.echo(f"Flowyard is up (data in {data.root}, logs in {data.logs})")
    click.echo(f"  API:     {api_url}/api")
    click.echo(f"  Docs:    {api_url}/api/docs")
    click.echo(f"  Flower:  http://{shown}:{flower_port}")
    click.echo(f"  Metrics: {api_url}/metrics")
    if platform.postgres is not None:
        click.echo(f"  PostgreSQL (embedded): {platform.postgres.url}")
    if platform.redis is not None:
        click.echo(f"  Redis (embedded):      {platform.redis.url}")
    if token is not None:
        click.echo("Admin token (shown once, stored hashed; keep it):")
        click.echo(f"  export FLOWYARD_URL={api_url} FLOWYARD_TOKEN={token}")
    click.echo("Press Ctrl-C to stop.", nl=True)


@click.command()
@click.option("--data-dir", default=".flowyard", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the embedded PostgreSQL and Redis keep their data, and the logs.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="API port.")
@click.option("--flower-port", default=5555, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Celery worker processes, each consuming every queue.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the API and Flower listen on.")
def up(data_dir: Path, port: int, flower_port: int, workers: int, host: str) -> None:
    """Run API, workers, scheduler and Flower; embedded PostgreSQL/Redis unless URLs are set."""
    settings = load_settings()
    _check_ports({"--port": port, "--flower-port": flower_port}, host)
    stop = threading.Event()
    try:
        data = prepare_data_dir(data_dir)
        data_lock = lock_data_dir(data)
    except EmbeddedError as error:
        raise StartupError(str(error)) from None
    platform = Platform(data)
    with _stop_signals(stop):
        try:
            env = _service_env(platform, settings)
            _migrate(env["DATABASE_URL"])
            if stop.is_set():  # Ctrl-C while the databases were starting
                return
            token = _first_admin_token(env["DATABASE_URL"])
            _start_children(platform, env, port, flower_port, workers, host)
            local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            _wait_ready(platform, [f"http://{local}:{port}/readyz",
                                   f"http://{local}:{flower_port}/healthcheck"], stop)
            # Printed even after a Ctrl-C: the token is shown only this once.
            _print_banner(host, port, flower_port, data, platform, token)
            _run_until_stopped(platform, stop)
        except (EmbeddedError, SupervisorError) as error:
            raise StartupError(str(error)) from None
        finally:
            click.echo("Stopping Flowyard (workers finish their current steps)...", err=True)
            platform.stop()
            data_lock.close()
            click.echo("Flowyard stopped.", err=True)


def _run_until_stopped(platform: Platform, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        child = platform.supervisor.first_exited()
        if child is not None:
            raise StartupError(
                f"{child.name} exited with code {child.process.returncode}; "
                f"see {child.log_path}; stopping everything"
            )
