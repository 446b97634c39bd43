"""Schedule due times: cron maths in a timezone, and the atomic claim that fires each once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from models.db import transaction
from models.triggers import (
    ScheduleError,
    check_cron,
    claim_schedule,
    create_trigger,
    find_trigger,
    next_fire_time,
    schedule_zone,
)
from worker.firing import LaunchRequest
from worker.schedules import ScaledClock, fire_due_schedules

T0 = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("* * * * *", "UTC", T0, datetime(2026, 11, 25, 12, 1, tzinfo=UTC)),
        ("*/5 * * * *", "UTC", T0, datetime(2026, 11, 25, 12, 5, tzinfo=UTC)),
        # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        ("0 9 * * *", "Europe/Paris", T0, datetime(2026, 11, 26, 8, 0, tzinfo=UTC)),
        ("0 9 * * *", "Europe/Paris", datetime(2026, 3, 29, 6, tzinfo=UTC),
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        ("30 2 * * 1", "America/New_York", T0, datetime(2026, 11, 30, 7, 30, tzinfo=UTC)),
    ],
)
def test_next_fire_time_is_computed_in_the_schedule_timezone(
    cron: str, zone: str, after: datetime, expected: datetime
) -> None:
    assert next_fire_time(cron, zone, after) == expected


@pytest.mark.parametrize("cron", ["", "* * * *", "61 * * * *", "* * * * * *", "hello"])
def test_bad_cron_expressions_are_refused(cron: str) -> None:
    with pytest.raises(ScheduleError):
        check_cron(cron)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ScheduleError):
        schedule_zone("Mars/Olympus_Mons")


def test_scaled_clock_runs_faster_and_agrees_between_instances() -> None:
    first, second = ScaledClock(60.0), ScaledClock(60.0)
    a = first()
    b = second()
    c = first()
    assert a <= b <= c
    assert a.tzinfo is not None
    # Sixty times faster: the scaled time is far ahead of the real time.
    assert a - datetime.now(UTC) > timedelta(days=30)


class RecordingLauncher:
    """Stands in for the instance launcher; the claim, not the launch, is under test here."""

    def __init__(self) -> None:
        self.requests: list[LaunchRequest] = []

    def __call__(self, session: Session, request: LaunchRequest) -> uuid.UUID:
        self.requests.append(request)
        return uuid.uuid4()


def _schedule(factory: sessionmaker[Session], workflow_id: uuid.UUID, due: datetime,
              *, cron: str = "* * * * *", active: bool = True,
              payload: dict[str, Any] | None = None) -> uuid.UUID:
    with transaction(factory) as session:
        trigger = create_trigger(
            session, workflow_id, trigger_type="schedule", trigger_source="cron",
            configuration={"cron": cron, "timezone": "UTC", "input": payload or {}},
            is_active=active, next_fire_at=due,
        )
        return trigger.id


def _reload(factory: sessionmaker[Session], trigger_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        trigger = find_trigger(session, trigger_id)
        assert trigger is not None
        session.expunge(trigger)
        return trigger


def test_a_due_time_is_claimed_by_exactly_one_of_two_concurrent_schedulers(
    factory: sessionmaker[Session], make_workflow, db_engine  # type: ignore[no-untyped-def]
) -> None:
    due = datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    trigger_id = _schedule(factory, make_workflow(), due)
    following = due + timedelta(minutes=1)
    results: dict[str, bool] = {}

    first = factory()
    first.begin()
    results["first"] = claim_schedule(first, trigger_id, due_at=due, next_fire_at=following,
                                      count_firing=True)

    def second_scheduler() -> None:
        with transaction(factory) as session:
            results["second"] = claim_schedule(session, trigger_id, due_at=due,
                                               next_fire_at=following, count_firing=True)

    thread = threading.Thread(target=second_scheduler)
    thread.start()
    _wait_until_a_backend_waits_for_a_lock(db_engine)
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert results == {"first": True, "second": False}
    trigger = _reload(factory, trigger_id)
    assert trigger.trigger_count == 1
    assert trigger.next_fire_at == following
    assert trigger.last_triggered is not None


def _wait_until_a_backend_waits_for_a_lock(db_engine) -> None:  # type: ignore[no-untyped-def]
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    while datetime.now(UTC) < deadline:
        with db_engine.connect() as connection:
            if connection.execute(query).scalar_one() > 0:
                return
        threading.Event().wait(0.02)
    pytest.fail("the second scheduler never blocked on the claimed row")


def test_missed_runs_after_downtime_fire_once_not_a_burst(
    factory: sessionmaker[Session], make_workflow  # type: ignore[no-untyped-def]
) -> None:
    workflow_id = make_workflow()
    trigger_id = _schedule(factory, workflow_id, T0 - timedelta(minutes=30),
                           payload={"report": "daily"})
    launch = RecordingLauncher()

    started = fire_due_schedules(factory, launch, T0)
    again = fire_due_schedules(factory, launch, T0 + timedelta(seconds=10))

    assert len(started) == 1 and again == []
    (request,) = launch.requests
    assert request.workflow_id == workflow_id
    assert request.input == {"report": "daily"}
    assert request.triggered_by == "schedule"
    assert request.trigger_source == str(trigger_id)
    assert request.idempotency_key == "schedule:2026-11-25T11:30:30+00:00"
    trigger = _reload(factory, trigger_id)
    assert trigger.trigger_count == 1
    assert trigger.next_fire_at == datetime(2026, 11, 25, 12, 1, tzinfo=UTC)


def test_each_due_minute_fires_once_as_the_clock_advances(
    factory: sessionmaker[Session], make_workflow  # type: ignore[no-untyped-def]
) -> None:
    trigger_id = _schedule(factory, make_workflow(), datetime(2026, 11, 25, 12, 1, tzinfo=UTC))
    launch = RecordingLauncher()
    for seconds in range(60, 60 * 4, 15):  # 12:01:00 .. 12:03:45, four ticks per minute
        fire_due_schedules(factory, launch, datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
                           + timedelta(seconds=seconds))
    keys = [request.idempotency_key for request in launch.requests]
    assert keys == [f"schedule:2026-11-25T12:0{m}:00+00:00" for m in (1, 2, 3)]
    assert _reload(factory, trigger_id).trigger_count == 3


def test_inactive_workflow_or_trigger_does_not_fire(
    factory: sessionmaker[Session], make_workflow  # type: ignore[no-untyped-def]
) -> None:
    due = T0 - timedelta(seconds=20)
    quiet_workflow = _schedule(factory, make_workflow(is_active=False), due)
    quiet_trigger = _schedule(factory, make_workflow(), due, active=False)
    launch = RecordingLauncher()

    assert fire_due_schedules(factory, launch, T0) == []
    assert launch.requests == []
    skipped = _reload(factory, quiet_workflow)
    # The inactive workflow's schedule moves on, so re-activating it replays nothing.
    assert skipped.next_fire_at == datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    assert skipped.trigger_count == 0 and skipped.last_triggered is None
    untouched = _reload(factory, quiet_trigger)
    assert untouched.next_fire_at == due and untouched.trigger_count == 0
