"""Lease keeping for running steps: one timer thread per process extends every held lease.

Replaces a thread per step (starting and joining one cost more than a noop step's handler).
Owns only the set of steps this process is running; never changes a step's status. A missed
beat only shortens a lease (the reconciler may then retry the step, fenced by attempt).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import structlog

from models.db import transaction
from models.steps import heartbeat

log = structlog.get_logger("flowyard.leases")

MIN_INTERVAL_SECONDS = 0.2


class LeaseKeeper:
    """Steps held by this process by id, with the attempt each one claimed."""

    def __init__(self, session_factory: Any, lease_seconds: float) -> None:
        self._session_factory = session_factory
        self._lease = float(lease_seconds)
        self._held: dict[uuid.UUID, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @property
    def interval(self) -> float:
        return max(self._lease / 3.0, MIN_INTERVAL_SECONDS)

    def hold(self, step_id: uuid.UUID, attempt: int) -> None:
        """Keep extending this attempt's lease until `release`."""
        with self._lock:
            self._held[step_id] = attempt
            # A forked child inherits the object but not the thread: start one per process.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="flowyard-leases",
                                                daemon=True)
                self._thread.start()

    def release(self, step_id: uuid.UUID) -> None:
        with self._lock:
            self._held.pop(step_id, None)

    def held(self) -> dict[uuid.UUID, int]:
        with self._lock:
            return dict(self._held)

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        """Extend every held lease once; drop attempts that were superseded."""
        held = self.held()
        if not held:
            return
        try:
            with transaction(self._session_factory) as session:
                lost = [step_id for step_id, attempt in held.items()
                        if not heartbeat(session, step_id, attempt, self._lease)]
        except Exception:  # a missed beat only shortens the lease; the steps keep running
            log.warning("step.heartbeat_failed", steps=len(held))
            return
        with self._lock:
            for step_id in lost:
                if self._held.get(step_id) == held[step_id]:
                    del self._held[step_id]
