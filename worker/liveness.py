"""Worker liveness: a bootstep that touches a heartbeat file, and the check a probe runs on it.

The file's modification time is the signal; nothing reads its content. It must not talk to the
broker (a probe that pings Celery over Redis fails when Redis is slow and restarts healthy
workers), and it must not hold any state beyond the file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_INTERVAL_SECONDS = 10.0


class HeartbeatError(Exception):
    """The heartbeat file is missing or older than allowed: the worker counts as dead."""


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat file that was found fresh enough."""

    path: str
    age_seconds: float


def touch_heartbeat(path: str) -> None:
    """Create the file (and its folder) or bump its modification time to now."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename so a probe never sees a half-created file.
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    scratch.write_text(f"{os.getpid()} {time.time():.3f}\n")
    os.replace(scratch, target)


def remove_heartbeat(path: str) -> None:
    """Delete the file so a restarted container cannot inherit a fresh-looking heartbeat."""
    Path(path).unlink(missing_ok=True)


def check_heartbeat(path: str, max_age_seconds: float, now: float | None = None) -> Heartbeat:
    """Return the heartbeat if the file was touched within `max_age_seconds`.

    Raises:
        HeartbeatError: the file is missing or stale.
    """
    try:
        modified = os.stat(path).st_mtime
    except FileNotFoundError:
        raise HeartbeatError(f"heartbeat file {path} does not exist") from None
    current = time.time() if now is None else now
    age = max(0.0, current - modified)
    if age > max_age_seconds:
        raise HeartbeatError(
            f"heartbeat file {path} is {age:.0f}s old (allowed: {max_age_seconds:.0f}s)"
        )
    return Heartbeat(path=path, age_seconds=age)


def install_heartbeat(
    app: Any, path: str, interval_seconds: float = DEFAULT_INTERVAL_SECONDS
) -> None:
    """Add a worker bootstep to `app` that touches `path` every `interval_seconds`.

    The touch runs on the worker's own timer, which the main process's event loop drives: if
    that loop stalls (deadlock, stuck consumer) the file goes stale and the probe fails. The
    file is written once at start and removed at shutdown. Call before the worker starts.
    Use it with the pools `flowyard worker` runs, prefork and threads, whose steps run off
    that loop: with `-P solo` a long task blocks it, and the probe would restart a worker
    that is merely busy.
    """
    from celery import bootsteps  # local: this module's check side must import fast

    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be positive")

    class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
        """Touches the heartbeat file from the worker's timer."""

        requires = {"celery.worker.components:Timer"}

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, parent: Any) -> None:
            touch_heartbeat(path)
            self.tref = parent.timer.call_repeatedly(
                interval_seconds, touch_heartbeat, (path,), priority=10
            )

        def stop(self, parent: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None
            remove_heartbeat(path)

        def terminate(self, parent: Any) -> None:
            self.stop(parent)

    app.steps["worker"].add(HeartbeatStep)
