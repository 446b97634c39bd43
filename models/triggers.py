"""Trigger queries: CRUD rows, due schedules, matching events, atomic firing claims; never commits.

Firing bookkeeping (`last_triggered`, `trigger_count`) always uses the database clock, and a
schedule's due time is claimed with one conditional UPDATE on `next_fire_at`, so any number of
scheduler processes fire each due time exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.statuses import TriggerType
from models.workflow import Workflow, WorkflowTrigger


class ScheduleError(ValueError):
    """A schedule's cron expression or timezone cannot be used."""


def schedule_zone(timezone: str) -> ZoneInfo:
    """The IANA zone named by a schedule.

    Raises:
        ScheduleError: the name is not a known IANA timezone.
    """
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown timezone {timezone!r}") from None


def check_cron(cron: str) -> None:
    """Raises ScheduleError unless `cron` is a five-field cron expression."""
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ScheduleError(f"invalid cron expression {cron!r} (expected five fields)")


def next_fire_time(cron: str, timezone: str, after: datetime) -> datetime:
    """The first due time strictly after `after`, evaluated in `timezone`, returned in UTC.

    Evaluating in the schedule's own zone is what makes `0 9 * * *` mean 09:00 local time on
    both sides of a daylight-saving change.

    Raises:
        ScheduleError: bad cron expression or timezone.
    """
    check_cron(cron)
    zone = schedule_zone(timezone)
    local_after = after.astimezone(zone)
    due: datetime = croniter(cron, local_after).get_next(datetime)
    return due.astimezone(UTC)


def find_trigger(session: Session, trigger_id: uuid.UUID) -> WorkflowTrigger | None:
    return session.get(WorkflowTrigger, trigger_id)


def list_triggers(session: Session, workflow_id: uuid.UUID) -> list[WorkflowTrigger]:
    """The workflow's triggers, newest first."""
    statement = (
        select(WorkflowTrigger)
        .where(WorkflowTrigger.workflow_id == workflow_id)
        .order_by(WorkflowTrigger.created_at.desc(), WorkflowTrigger.id)
    )
    return list(session.scalars(statement))


def create_trigger(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    trigger_type: str,
    trigger_source: str | None,
    configuration: dict[str, Any] | None,
    is_active: bool,
    next_fire_at: datetime | None = None,
) -> WorkflowTrigger:
    trigger = WorkflowTrigger(
        # clock_timestamp(), not now(): triggers created in one transaction (an import) keep
        # their order, which exports reproduce.
        created_at=func.clock_timestamp(),
        workflow_id=workflow_id,
        trigger_type=trigger_type,
        trigger_source=trigger_source,
        configuration=configuration,
        is_active=is_active,
        trigger_count=0,
        next_fire_at=next_fire_at,
    )
    session.add(trigger)
    session.flush()
    return trigger


def delete_trigger(session: Session, trigger: WorkflowTrigger) -> None:
    session.delete(trigger)
    session.flush()


def record_firing(session: Session, trigger_id: uuid.UUID) -> bool:
    """Count one firing of an active trigger; False when it is gone or inactive."""
    statement = (
        update(WorkflowTrigger)
        .where(WorkflowTrigger.id == trigger_id, WorkflowTrigger.is_active.is_(True))
        .values(
            last_triggered=func.now(),
            trigger_count=func.coalesce(WorkflowTrigger.trigger_count, 0) + 1,
            updated_at=func.now(),
        )
        .returning(WorkflowTrigger.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).first() is not None


def due_schedules(
    session: Session, now: datetime, *, limit: int = 100
) -> Sequence[tuple[WorkflowTrigger, bool]]:
    """Active schedule triggers whose `next_fire_at` has come, with their workflow's is_active.

    Rows are read without locks: `claim_schedule` decides who fires each due time.
    """
    statement = (
        select(WorkflowTrigger, Workflow.is_active)
        .join(Workflow, Workflow.id == WorkflowTrigger.workflow_id)
        .where(
            WorkflowTrigger.trigger_type == TriggerType.SCHEDULE.value,
            WorkflowTrigger.is_active.is_(True),
            WorkflowTrigger.next_fire_at.is_not(None),
            WorkflowTrigger.next_fire_at <= now,
        )
        .order_by(WorkflowTrigger.next_fire_at, WorkflowTrigger.id)
        .limit(limit)
    )
    return [(trigger, bool(active)) for trigger, active in session.execute(statement)]


def claim_schedule(
    session: Session,
    trigger_id: uuid.UUID,
    *,
    due_at: datetime,
    next_fire_at: datetime | None,
    count_firing: bool,
) -> bool:
    """Move a schedule from `due_at` to `next_fire_at`; True only for the one caller that did.

    A concurrent scheduler blocks on the row lock and then finds `next_fire_at` changed, so it
    gets False. With `count_firing` the same statement records the firing.
    """
    values: dict[str, Any] = {"next_fire_at": next_fire_at, "updated_at": func.now()}
    if count_firing:
        values["last_triggered"] = func.now()
        values["trigger_count"] = func.coalesce(WorkflowTrigger.trigger_count, 0) + 1
    statement = (
        update(WorkflowTrigger)
        .where(
            WorkflowTrigger.id == trigger_id,
            WorkflowTrigger.is_active.is_(True),
            WorkflowTrigger.next_fire_at == due_at,
        )
        .values(**values)
        .returning(WorkflowTrigger.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).first() is not None


def matching_event_triggers(
    session: Session, source: str, event_type: str
) -> list[WorkflowTrigger]:
    """Active event triggers of active workflows configured for this source and type.

    The optional CEL filter is applied by the caller, which owns expression evaluation.
    """
    configuration = WorkflowTrigger.configuration
    statement = (
        select(WorkflowTrigger)
        .join(Workflow, Workflow.id == WorkflowTrigger.workflow_id)
        .where(
            WorkflowTrigger.trigger_type == TriggerType.EVENT.value,
            WorkflowTrigger.is_active.is_(True),
            Workflow.is_active.is_(True),
            configuration["source"].astext == source,
            configuration["type"].astext == event_type,
        )
        .order_by(WorkflowTrigger.created_at, WorkflowTrigger.id)
    )
    return list(session.scalars(statement))
