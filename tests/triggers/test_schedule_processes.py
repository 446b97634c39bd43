"""Two real `flowyard scheduler` processes fire a `* * * * *` schedule once per due minute.

The schedulers run on an accelerated clock (FLOWYARD_SCHEDULE_CLOCK_SPEED=30: one minute of
schedule time per two real seconds), so several due times pass in seconds.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.db import transaction
from models.instance import WorkflowInstance
from models.triggers import create_trigger, find_trigger, next_fire_time
from tests.processes import scheduler_process, wait_until
from worker.schedules import ScaledClock

pytestmark = pytest.mark.slow
SPEED = 30.0


# Many schedules due at the same moments keep both schedulers busy on the same rows at once.
SCHEDULES = 25


def _count(factory: sessionmaker[Session], trigger_id: uuid.UUID) -> int:
    with factory() as session:
        trigger = find_trigger(session, trigger_id)
        assert trigger is not None
        return trigger.trigger_count or 0


def _instances(factory: sessionmaker[Session], workflow_id: uuid.UUID) -> list[WorkflowInstance]:
    with factory() as session:
        return list(session.scalars(select(WorkflowInstance)
                                    .where(WorkflowInstance.workflow_id == workflow_id)))


def test_two_schedulers_fire_each_due_minute_exactly_once(
    settings: Any, factory: sessionmaker[Session], make_workflow: Any
) -> None:
    first_due = next_fire_time("* * * * *", "UTC", ScaledClock(SPEED)())
    schedules: list[tuple[uuid.UUID, uuid.UUID]] = []
    for number in range(SCHEDULES):
        workflow_id = make_workflow(name=f"every minute {number}")
        with transaction(factory) as session:
            trigger_id = create_trigger(
                session, workflow_id, trigger_type="schedule", trigger_source="every-minute",
                configuration={"cron": "* * * * *", "timezone": "UTC",
                               "input": {"tick": True}},
                is_active=True, next_fire_at=first_due,
            ).id
        schedules.append((workflow_id, trigger_id))
    workflow_id, trigger_id = schedules[-1]
    env = {"FLOWYARD_SCHEDULE_CLOCK_SPEED": str(SPEED)}
    with scheduler_process(settings, extra_env=env), scheduler_process(settings, extra_env=env):
        wait_until(lambda: _count(factory, trigger_id) >= 4, 90.0, interval=0.2,
                   message="four scheduled firings")
    for some_workflow, some_trigger in schedules:
        fired = _instances(factory, some_workflow)
        assert len(fired) == _count(factory, some_trigger) >= 3
    instances = _instances(factory, workflow_id)
    keys = Counter(instance.idempotency_key for instance in instances)
    assert keys and max(keys.values()) == 1, keys
    due_times = sorted(datetime.fromisoformat(str(key).removeprefix("schedule:"))
                       for key in keys)
    assert due_times[0] == first_due
    # Each firing is a whole minute of schedule time, and no minute fired twice.
    assert all(later - earlier >= timedelta(minutes=1)
               for earlier, later in zip(due_times, due_times[1:], strict=False))
    assert all(due.second == 0 for due in due_times)
    for instance in instances:
        assert instance.triggered_by == "schedule"
        assert instance.trigger_source == str(trigger_id)
        assert instance.execution_context == {"input": {"tick": True}}
