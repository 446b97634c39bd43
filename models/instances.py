"""Workflow instance queries: locking, conditional status changes, admission; never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models.db import Executor
from models.driver_sql import fetch_all, fetch_one, fetch_pipelined, jsonb, run
from models.instance import WorkflowExecution, WorkflowInstance

# Any constant works as long as every process uses the same one.
ADMISSION_LOCK_KEY = 0x466C6F7779617264  # "Flowyard"
ADMISSION_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"


def lock_instance(session: Session, instance_id: uuid.UUID) -> WorkflowInstance | None:
    """The instance row, locked FOR UPDATE until the transaction ends."""
    return session.execute(
        select(WorkflowInstance)
        .where(WorkflowInstance.id == instance_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class InstanceRow:
    """What planning reads of an instance: plain columns, no ORM entity to build or flush."""

    id: uuid.UUID
    status: str
    workflow_id: uuid.UUID | None
    workflow_version_id: uuid.UUID | None
    triggered_by: str | None
    execution_context: dict[str, Any] | None
    progress: int | None


# The columns of an `InstanceRow`, in its field order, from `workflow_instances AS i`, and
# the names they are selected under.
INSTANCE_ROW_COLUMNS = ("i.id, i.status AS instance_status, i.workflow_id, "
                        "i.workflow_version_id, i.triggered_by, i.execution_context, i.progress")
INSTANCE_ROW_NAMES = ("id", "instance_status", "workflow_id", "workflow_version_id",
                      "triggered_by", "execution_context", "progress")

LOCK_INSTANCE_ROW = f"""
    SELECT {INSTANCE_ROW_COLUMNS}
      FROM workflow_instances AS i WHERE i.id = %(id)s FOR UPDATE
"""


def lock_instance_row(session: Executor, instance_id: uuid.UUID) -> InstanceRow | None:
    """`lock_instance` for the step path: the same row lock, read as plain columns."""
    row = fetch_one(session, LOCK_INSTANCE_ROW, {"id": instance_id})
    return None if row is None else InstanceRow(*row)


def set_progress(session: Executor, instance_id: uuid.UUID, progress: int) -> None:
    run(session, "UPDATE workflow_instances SET progress = %(progress)s, updated_at = now()"
                 " WHERE id = %(id)s", {"id": instance_id, "progress": progress})


def find_instance(session: Session, instance_id: uuid.UUID) -> WorkflowInstance | None:
    return session.get(WorkflowInstance, instance_id)


def steps_of(session: Session, instance_id: uuid.UUID) -> list[WorkflowExecution]:
    """Every step row of an instance, fresh from the database, oldest first."""
    return list(
        session.execute(
            select(WorkflowExecution)
            .where(WorkflowExecution.instance_id == instance_id)
            .order_by(WorkflowExecution.created_at, WorkflowExecution.node_id)
            .execution_options(populate_existing=True)
        ).scalars()
    )


def step_states_of(session: Executor, instance_id: uuid.UUID) -> list[Any]:
    """What planning reads of every step (id, node_id, status, selected_handle, output_data).

    Plain rows, not ORM objects: an instance with a thousand steps is re-read after every
    step of a fan-out, and building entities cost several times the query.
    """
    return fetch_all(session, """
        SELECT id, node_id, status, selected_handle, output_data
          FROM workflow_executions WHERE instance_id = %(iid)s
    """, {"iid": instance_id})


# What ending an instance reads of each step besides what planning reads (`step_states_of`).
ENDING_COLUMNS = ("error_message", "started_at", "queued_at", "retry_count", "duration_ms")
_STEP_RECORDS = f"""
    SELECT id, node_id, status, selected_handle, output_data, {", ".join(ENDING_COLUMNS)}
      FROM workflow_executions WHERE instance_id = %(iid)s
     ORDER BY created_at, node_id
"""


def step_records_of(executor: Executor, instance_id: uuid.UUID) -> list[Any]:
    """Every step of an instance with what ending it reads (outputs, errors, timings)."""
    return fetch_all(executor, _STEP_RECORDS, {"iid": instance_id})


def end_instance(executor: Executor, instance_id: uuid.UUID, *, status: str, progress: int,
                 output: Any, error: str | None, metrics: dict[str, Any]) -> datetime:
    """Write a final status now (the database clock); `metrics` gains the wall time.

    Returns the completion time. The caller holds the instance row lock.
    """
    row = fetch_one(executor, """
        WITH ended AS (SELECT clock_timestamp() AS at)
        UPDATE workflow_instances AS i
           SET status = %(status)s, progress = %(progress)s, output_data = %(output)s,
               error_details = %(error)s, completed_at = ended.at, updated_at = now(),
               execution_metrics = CAST(%(metrics)s AS jsonb) || jsonb_build_object(
                   'wall_time_ms',
                   CAST(floor(EXTRACT(EPOCH FROM (ended.at - i.started_at)) * 1000) AS bigint))
          FROM ended
         WHERE i.id = %(id)s
     RETURNING i.completed_at
    """, {"id": instance_id, "status": status, "progress": progress, "output": jsonb(output),
          "error": error, "metrics": jsonb(metrics)})
    if row is None:
        raise LookupError(f"instance {instance_id} does not exist")
    completed_at: datetime = row[0]
    return completed_at


def decided_counts(session: Executor, instance_id: uuid.UUID,
                   node_ids: Sequence[str]) -> tuple[int, int]:
    """How many steps of the instance are decided, and how many of those are in `node_ids`."""
    # A join, not `node_id = ANY(:ids)`: with a thousand parents that array is searched
    # linearly for every row (a prepared statement's generic plan does not hash it). The
    # statuses filter the aggregate, not the scan: in WHERE, the planner may AND the
    # instance's index with the status index, which lists every row version of every step
    # once completed, of every instance (6 ms a call on a table of 37k step rows).
    row = fetch_one(session, """
        SELECT count(*) FILTER (WHERE e.decided) AS decided,
               count(*) FILTER (WHERE e.decided AND e.node_id IN (
                   SELECT p.node_id FROM unnest(CAST(%(node_ids)s AS text[])) AS p(node_id)))
                   AS parents_decided
          FROM (SELECT node_id, status IN ('completed', 'failed', 'skipped') AS decided
                  FROM workflow_executions WHERE instance_id = %(iid)s) AS e
    """, {"iid": instance_id, "node_ids": list(node_ids)})
    assert row is not None
    return int(row[0]), int(row[1])


def find_by_idempotency_key(session: Session, workflow_id: uuid.UUID,
                            key: str) -> WorkflowInstance | None:
    return session.execute(
        select(WorkflowInstance).where(
            WorkflowInstance.workflow_id == workflow_id,
            WorkflowInstance.idempotency_key == key,
        )
    ).scalar_one_or_none()


# `any_waiting_for_a_pass`'s read, for a caller that sends it with something else.
WAITING_FOR_A_PASS = """
    SELECT EXISTS (
        SELECT 1 FROM workflow_instances
         WHERE status = 'pending'
           AND (updated_at > created_at OR deadline_at IS NOT NULL
                OR parent_execution_id IS NOT NULL)
    ) AS waiting
"""


def any_waiting_for_a_pass(executor: Executor) -> bool:
    """Whether a pending instance needs some admission pass to start it (an index lookup).

    That is one a pass found no slot for (`mark_deferred`), one started before (resumed or
    retried: it has a deadline), or a sub-workflow child. A new instance whose launch has
    not run its own admission yet does not count: its launch will (the reconciler's
    periodic pass covers a launch that died in between).
    """
    row = fetch_one(executor, WAITING_FOR_A_PASS, {})
    return bool(row is not None and row[0])


def mark_deferred(executor: Executor) -> int:
    """Note on each new pending instance that a pass found no slot for it; how many.

    Its `updated_at` moves past its `created_at` (equal since the insert), which
    `any_waiting_for_a_pass` reads: the next instance to end admits again.
    """
    row = fetch_one(executor, """
        WITH marked AS (
            UPDATE workflow_instances SET updated_at = clock_timestamp()
             WHERE status = 'pending' AND deadline_at IS NULL AND updated_at = created_at
         RETURNING 1
        )
        SELECT count(*) FROM marked
    """, {})
    return int(row[0]) if row is not None else 0


@dataclass(frozen=True)
class StartedInstance:
    """An instance just moved pending -> running, with the clock columns the start set."""

    row: InstanceRow
    started_at: datetime
    deadline_at: datetime
    updated_at: datetime


# pending -> running on a new instance's first start, if fewer than `max_running` instances
# run or wait besides it: then starting it overtakes nobody. Its clock and deadline begin
# now. The caller holds the admission lock, which makes the count hold until it commits.
# One row: whether there was that room, then the started instance's columns (or nulls).
_START_IF_ROOM = f"""
    WITH started AS (SELECT clock_timestamp() AS at),
         room AS (SELECT (SELECT count(*) FROM workflow_instances WHERE status = 'running')
                       + (SELECT count(*) FROM workflow_instances
                           WHERE status = 'pending' AND id <> %(id)s)
                       < %(max_running)s AS for_all),
         moved AS (
            UPDATE workflow_instances AS i
               SET status = 'running', started_at = started.at, paused_at = NULL,
                   deadline_at = started.at + make_interval(secs => %(timeout)s),
                   progress = COALESCE(CAST(%(progress)s AS integer), i.progress),
                   updated_at = now()
              FROM started, room
             WHERE i.id = %(id)s AND i.status = 'pending' AND i.deadline_at IS NULL
               AND room.for_all
         RETURNING {INSTANCE_ROW_COLUMNS}, i.started_at, i.deadline_at, i.updated_at)
    SELECT room.for_all, moved.* FROM room LEFT JOIN moved ON true
"""


def start_if_room_statement(instance_id: uuid.UUID, timeout_seconds: float, max_running: int,
                            progress: int | None = None) -> tuple[str, dict[str, Any]]:
    """The statement that starts a new pending instance if there is room, to send after
    the admission lock; its rows give `start_decision_of`. `progress`: set it too."""
    return _START_IF_ROOM, {"id": instance_id, "timeout": float(timeout_seconds),
                            "max_running": max_running, "progress": progress}


@dataclass(frozen=True)
class StartDecision:
    """What `start_if_room_statement` decided."""

    room_for_all: bool  # room for this instance and every other pending one
    started: StartedInstance | None  # None: it did not start (no room, or not new pending)


def start_decision_of(rows: Sequence[Any]) -> StartDecision:
    """`start_if_room_statement`'s one row, read."""
    room_for_all, *columns = rows[0]
    if columns[0] is None:  # no instance row: nothing started
        return StartDecision(bool(room_for_all), None)
    *instance, started_at, deadline_at, updated_at = columns
    return StartDecision(bool(room_for_all), StartedInstance(
        InstanceRow(*instance), started_at, deadline_at, updated_at))


def lock_admission_and_start(executor: Executor, instance_id: uuid.UUID,
                             timeout_seconds: float, max_running: int) -> StartDecision:
    """Take the admission lock, then start the new instance if there is room: one round
    trip (BEGIN, lock and start pipelined), as every round trip under that lock is paid
    by every admission waiting for it. With room it may still not start: a pass started
    it first, or it was cancelled."""
    _, rows = fetch_pipelined(executor, [
        (ADMISSION_LOCK_SQL, {"key": ADMISSION_LOCK_KEY}),
        start_if_room_statement(instance_id, timeout_seconds, max_running),
    ])
    return start_decision_of(rows)


def take_admission_lock(session: Executor) -> None:
    """Serialise admission decisions across every process until the transaction ends."""
    run(session, ADMISSION_LOCK_SQL, {"key": ADMISSION_LOCK_KEY})


def count_running(session: Executor) -> int:
    return int(session.execute(
        select(func.count()).select_from(WorkflowInstance)
        .where(WorkflowInstance.status == "running")
    ).scalar_one())


def pick_pending(session: Session, limit: int) -> list[uuid.UUID]:
    """Pending top-level instances to admit next: high, normal, low; oldest first in each.

    A sub-workflow child waits for its parent instead: it is admitted while its parent runs
    (`models.subworkflows.pending_children_of_running_parents`), so a child still pending
    when its parent is paused does not start until the parent resumes.
    """
    if limit <= 0:
        return []
    rows = session.execute(
        text("""
            SELECT id FROM workflow_instances
             WHERE status = 'pending' AND parent_execution_id IS NULL
             ORDER BY CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END,
                      created_at, id
             LIMIT :limit
             FOR UPDATE SKIP LOCKED
        """),
        {"limit": limit},
    ).all()
    return [r[0] for r in rows]


def set_status(session: Session, instance_id: uuid.UUID, expected: Sequence[str],
               new_status: str, **values: Any) -> bool:
    """Conditional status change; False (nothing changed) when the status was not expected."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    extra = f", {assignments}" if assignments else ""
    row = session.execute(
        text(f"""
            UPDATE workflow_instances SET status = :new_status, updated_at = now(){extra}
             WHERE id = :id AND status = ANY(:expected)
         RETURNING id
        """),
        {"id": instance_id, "new_status": new_status, "expected": list(expected), **values},
    ).one_or_none()
    return row is not None


def timed_out_instances(session: Session, limit: int = 100) -> list[uuid.UUID]:
    rows = session.execute(
        text("""
            SELECT id FROM workflow_instances
             WHERE status IN ('running', 'paused') AND deadline_at IS NOT NULL
               AND deadline_at < now()
             LIMIT :limit
        """),
        {"limit": limit},
    ).all()
    return [r[0] for r in rows]


def idle_running_instances(session: Session, limit: int = 100) -> list[uuid.UUID]:
    """Running instances with no step pending, running or waiting: they need a replan.

    Each instance's steps are read by its index and their statuses tested in an aggregate:
    as a NOT EXISTS condition, the planner ANDed the status index (every row version of
    every step ever pending or running) into each probe, 105 ms a pass for 320 running
    instances on a small table, 1.8 ms this way.
    """
    rows = session.execute(
        text("""
            SELECT i.id FROM workflow_instances i
             WHERE i.status = 'running'
               AND i.updated_at < now() - interval '1 second'
               AND (SELECT bool_or(e.status IN ('pending', 'running', 'waiting_approval'))
                      FROM workflow_executions e WHERE e.instance_id = i.id) IS NOT TRUE
             LIMIT :limit
        """),
        {"limit": limit},
    ).all()
    return [r[0] for r in rows]


def list_instances(session: Session, *, workflow_id: uuid.UUID | None, status: str | None,
                   limit: int, offset: int) -> tuple[list[WorkflowInstance], int]:
    """A page of instances, newest first, and the total matching the filters."""
    query = select(WorkflowInstance)
    count = select(func.count()).select_from(WorkflowInstance)
    if workflow_id is not None:
        query = query.where(WorkflowInstance.workflow_id == workflow_id)
        count = count.where(WorkflowInstance.workflow_id == workflow_id)
    if status is not None:
        query = query.where(WorkflowInstance.status == status)
        count = count.where(WorkflowInstance.status == status)
    items = session.execute(
        query.order_by(WorkflowInstance.created_at.desc(), WorkflowInstance.id.desc())
        .limit(limit).offset(offset)
    ).scalars().all()
    return list(items), int(session.execute(count).scalar_one())
