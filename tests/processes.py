"""Start real `flowyard worker` / `flowyard scheduler` subprocesses for tests, and stop them.

Usage:
    with worker_process(settings, queues="noop,trigger", concurrency=1) as proc: ...
    with scheduler_process(settings): ...
Every process gets the test session's database and Redis index through its environment,
runs in its own process group (so a test can kill -9 it), and is stopped on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# A fixed, valid Fernet key used only when the test settings carry none.
_THROWAWAY_KEY = "dGVzdC1vbmx5LWZsb3d5YXJkLWtleS0wMDAwMDAwMDA="



def settings_env(settings: Any, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a child process needs to see `settings` (plus overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWYARD_", "CELERY_"))}
    env.update({
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CELERY_BROKER_URL": settings.celery_broker_url,
        "MAX_CONCURRENT_WORKFLOWS": str(settings.max_concurrent_workflows),
        "WORKFLOW_EXECUTION_TIMEOUT": str(settings.workflow_execution_timeout_ms),
        "FLOWYARD_RECONCILE_INTERVAL": str(settings.reconcile_interval_seconds),
        "FLOWYARD_STEP_LEASE_SECONDS": str(settings.step_lease_seconds),
        "FLOWYARD_MAX_DELIVERY_ATTEMPTS": str(settings.max_delivery_attempts),
        "FLOWYARD_DEFAULT_STEP_TIMEOUT": str(settings.default_step_timeout_seconds),
        "LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
    })
    # Always a key: a secret another test module left in the shared session database must
    # not stop this child at start (workers refuse to start with secrets but no key).
    keys = settings.secret_keys or (_THROWAWAY_KEY,)
    env["FLOWYARD_SECRET_KEYS"] = ",".join(keys)
    if settings.http_allowed_hosts:
        env["HTTP_ALLOWED_HOSTS"] = ",".join(settings.http_allowed_hosts)
    env.update(extra or {})
    return env


def _flowyard_command() -> list[str]:
    script = Path(sys.executable).with_name("flowyard")
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                   "from api.cli import main; main()"]


class Process:
    """A running flowyard subprocess with its log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """Pids of the direct children (Celery pool processes)."""
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(line) for line in out.stdout.split()]

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.signal_group(signal.SIGCONT)
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout)


def start_process(args: list[str], env: Mapping[str, str], name: str) -> Process:
    log_dir = Path(tempfile.mkdtemp(prefix=f"flowyard-{name}-"))
    log_path = log_dir / f"{name}.log"
    handle = log_path.open("wb")
    popen = subprocess.Popen(_flowyard_command() + args, env=dict(env), stdout=handle,
                             stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return Process(popen, log_path)


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def wait_worker_ready(proc: Process, timeout: float = 30.0) -> None:
    def ready() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"worker exited early:\n{proc.log()}")
        return " ready." in proc.log()

    wait_until(ready, timeout, interval=0.1, message=f"worker ready (log {proc.log_path})")


@contextmanager
def worker_process(settings: Any, *, queues: str = "", concurrency: int = 1,
                   name: str = "worker", extra_env: Mapping[str, str] | None = None,
                   pool: str = "prefork", extra_args: Sequence[str] = ()) -> Iterator[Process]:
    """A `flowyard worker` on the test broker, ready to take tasks when the block starts."""
    args = ["worker", "-c", str(concurrency), "-n", f"{name}-{os.getpid()}-{time.time_ns()}@%h",
            "--loglevel", "INFO", "--pool", pool, *extra_args]
    if queues:
        args += ["-Q", queues]
    proc = start_process(args, settings_env(settings, extra_env), name)
    try:
        wait_worker_ready(proc)
        yield proc
    finally:
        proc.stop()


@contextmanager
def scheduler_process(settings: Any, *, extra_env: Mapping[str, str] | None = None
                      ) -> Iterator[Process]:
    """A `flowyard scheduler` (the reconciler loop) on the test database and broker."""
    proc = start_process(["scheduler"], settings_env(settings, extra_env), "scheduler")
    try:
        wait_until(lambda: "reconciling" in proc.log() or proc.popen.poll() is not None,
                   30.0, interval=0.1, message="scheduler start")
        if proc.popen.poll() is not None:
            raise AssertionError(f"scheduler exited early:\n{proc.log()}")
        yield proc
    finally:
        proc.stop()
