"""Helpers for CLI tests: run `flowyard` commands as real processes, wait with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
_BOOTSTRAP = "import sys; from api.cli import main; sys.argv[0] = 'flowyard'; main()"
_SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FLOWYARD_URL",
                      "FLOWYARD_TOKEN", "FLOWYARD_SECRET_KEYS")


def flowyard(*args: str) -> list[str]:
    return [sys.executable, "-c", _BOOTSTRAP, *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any service URL, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def admin_token(database_url: str) -> str:
    """A new admin token in the database at `database_url` (as `flowyard token create`)."""
    from api.auth import issue_token
    from models.db import make_engine, make_session_factory, transaction
    from models.settings import Settings

    engine = make_engine(Settings(database_url=database_url), pool_size=1, max_overflow=0)
    try:
        with transaction(make_session_factory(engine)) as session:
            _, token = issue_token(session, name="cli-test", roles=["admin"])
    finally:
        engine.dispose()
    return token


def wait_for(check: Callable[[], Any], timeout: float, what: str,
             alive: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"process exited ({alive.returncode}) while waiting for {what}")
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> Any:
    try:
        response = requests.get(url, headers=dict(headers or {}), timeout=3)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


def scrape(url: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples a Prometheus endpoint serves whose names start with `prefix`, by name and
    (sorted) labels."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url, timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith(prefix)}


def processes_that_counted(metrics_dir: Path) -> set[str]:
    """The pids with counter files in a run's prometheus-client multiprocess directory."""
    return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still alive (zombies count as gone: they have exited)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Last-resort cleanup: SIGKILL a process and everything it started."""
    for child in descendants(process.pid):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    if process.poll() is None:
        process.kill()
        process.wait(30)


@contextmanager
def started(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[
        subprocess.Popen[bytes]]:
    """A process that is stopped (SIGTERM, then SIGKILL of its whole tree) when the block ends."""
    handle: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(argv, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(process)
        handle.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
