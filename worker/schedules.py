"""Schedule triggers: fire each cron due time exactly once across any number of schedulers.

How a due time is fired once: every scheduler reads the due rows without locks, then each
claims a due time with one conditional UPDATE (`... WHERE id = :id AND next_fire_at = :due`)
in the same transaction that creates the instance. Only one UPDATE can match; a concurrent
scheduler blocks on the row lock, re-reads, finds `next_fire_at` moved and gets zero rows. The
instance also carries the idempotency key `schedule:<due time>`, which the
(workflow_id, idempotency_key) unique constraint makes a second line of defence.

Missed runs (scheduler down, or slower than the cron): the schedule fires ONCE, stamped with
the first missed due time, and then moves to the first due time after *now* - never a burst of
catch-up runs. A schedule whose workflow is inactive advances without firing, so re-activating a
workflow does not replay the runs it skipped.

Time: due times are computed from a `Clock` so tests can run an accelerated clock
(`ScaledClock`); production uses the real UTC clock. This module never reads the environment.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.orm import Session, sessionmaker

from models.db import transaction
from models.triggers import ScheduleError, claim_schedule, due_schedules, next_fire_time
from models.workflow import WorkflowTrigger
from worker.firing import Launcher, trigger_launch_request

if TYPE_CHECKING:
    from worker.runtime import WorkerRuntime

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

# Fixed origin of the scaled clock, so every process computes the same scaled time.
_SCALED_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def real_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScaledClock:
    """A clock running `speed` times faster than real time (test hook for seconds-long tests).

    Every process using the same speed sees the same time, since it derives from the shared
    wall clock and a fixed epoch.
    """

    speed: float

    def __call__(self) -> datetime:
        return _SCALED_EPOCH + (real_clock() - _SCALED_EPOCH) * self.speed


def make_clock(speed: float) -> Clock:
    return real_clock if speed == 1.0 else ScaledClock(speed)


def schedule_fields(trigger: WorkflowTrigger) -> tuple[str, str]:
    configuration = trigger.configuration or {}
    return str(configuration.get("cron", "")), str(configuration.get("timezone") or "UTC")


def initial_fire_time(configuration: dict[str, object], now: datetime) -> datetime:
    """`next_fire_at` for a newly created or re-activated schedule.

    Raises:
        ScheduleError: bad cron expression or timezone.
    """
    cron = str(configuration.get("cron", ""))
    timezone = str(configuration.get("timezone") or "UTC")
    return next_fire_time(cron, timezone, now)


def _fire_one(
    session: Session, launch: Launcher, trigger: WorkflowTrigger, workflow_active: bool,
    now: datetime,
) -> uuid.UUID | None:
    due_at = trigger.next_fire_at
    assert due_at is not None  # due_schedules only returns rows with a due time
    cron, timezone = schedule_fields(trigger)
    try:
        following: datetime | None = next_fire_time(cron, timezone, max(now, due_at))
    except ScheduleError as error:
        # A stored schedule that no longer parses stops instead of failing every tick.
        log.warning("schedule disabled", trigger_id=str(trigger.id), error=str(error))
        following = None
    claimed = claim_schedule(session, trigger.id, due_at=due_at, next_fire_at=following,
                             count_firing=workflow_active)
    if not claimed or not workflow_active:
        return None
    configuration = trigger.configuration or {}
    payload = configuration.get("input") or {}
    key = f"schedule:{due_at.astimezone(UTC).isoformat()}"
    return launch(session, trigger_launch_request(trigger, dict(payload), idempotency_key=key))


def fire_due_schedules(
    factory: sessionmaker[Session], launch: Launcher, now: datetime
) -> list[uuid.UUID]:
    """Fire every schedule due at `now`; one transaction per due trigger. Returns instance ids."""
    with transaction(factory) as session:
        due = due_schedules(session, now)
        session.expunge_all()
    started: list[uuid.UUID] = []
    for trigger, workflow_active in due:
        with transaction(factory) as session:
            instance_id = _fire_one(session, launch, trigger, workflow_active, now)
        if instance_id is not None:
            log.info("schedule fired", trigger_id=str(trigger.id), instance_id=str(instance_id))
            started.append(instance_id)
    return started


def run_schedules(
    factory: sessionmaker[Session], launch: Launcher, *, clock: Clock, interval: float,
    stop: threading.Event,
) -> None:
    """Fire due schedules every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            fire_due_schedules(factory, launch, clock())
        except Exception:  # keep the loop alive: the next tick retries what failed
            log.exception("schedule tick failed")
        stop.wait(interval)


def fire_schedules_job(runtime: WorkerRuntime) -> int:
    """The reconciler's periodic job: fire due schedules; the `admit` job then starts them."""
    from worker.launch import launch

    clock = make_clock(runtime.settings.schedule_clock_speed)
    return len(fire_due_schedules(runtime.session_factory, launch, clock()))
