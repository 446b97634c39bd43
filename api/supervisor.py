"""Child processes of `flowyard up`: start them, watch them, stop them warmly, leave none behind.

Owns process groups and signals only; it must not know what the children are (the `up`
command decides that) nor read settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class SupervisorError(RuntimeError):
    """A child could not be started."""


@dataclass
class Child:
    """One supervised process; it leads its own process group so its own children die with it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    """Starts children in order and stops them in reverse order."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self._log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Start `argv` with exactly `env`; output goes to <log_dir>/<name>.log when set."""
        log_path = self._log_dir / f"{name}.log" if self._log_dir else None
        log_file = open(log_path, "ab") if log_path else None  # closed in stop()
        try:
            process = subprocess.Popen(
                list(argv), env=dict(env), stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT if log_file else None,
                # A new session: terminal signals reach only the supervisor, which forwards
                # them in order; killpg then also reaches gunicorn/celery pool children.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as error:
            if log_file:
                log_file.close()
            raise SupervisorError(f"could not start {name}: {error}") from None
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        """A child that has exited on its own, if any."""
        for child in self.children:
            if not child.running():
                return child
        return None

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGTERM) -> None:
        """Warm shutdown: signal every child's group at once, then wait for all to exit.

        They stop in parallel (each finishes its own work: gunicorn its requests, Celery its
        running steps); a group still alive `timeout` seconds after the signal is killed.
        """
        for child in reversed(self.children):
            _signal_group(child.pid, sig)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            _wait_or_kill(child, max(0.0, deadline - time.monotonic()))
        for child in self.children:
            # Orphans of a child that exited first (e.g. a pool process) are in its group.
            _signal_group(child.pid, signal.SIGKILL)
            if child.log_file:
                child.log_file.close()
                child.log_file = None


def die_with_parent() -> None:
    """In a forked child: get SIGTERM if the supervisor dies, even by SIGKILL (Linux only)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_or_kill(child: Child, timeout: float) -> None:
    try:
        child.process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(child.pid, signal.SIGKILL)
        child.process.wait()
    _wait_group_gone(child.pid, timeout=10.0)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait for the rest of a group (e.g. pool processes re-parented to init) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
