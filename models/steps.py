"""Step (workflow_executions) state transitions as fenced conditional UPDATEs; never commits.

Every transition names the status it expects (and, for a worker's writes, the attempt it
claimed); zero rows returned means a duplicate or stale delivery and the caller must stop.
Every time comparison uses the database clock (now()).

The per-step statements find their rows by primary key and compare statuses (and the
version) with IS NOT DISTINCT FROM: the same as `=` when one side is never null, but no
index serves it. With `=`, the planner may prefer the status index (the statuses of live
rows are rare values, so their estimate ties with the key's one row) and filter every
pending or running row by id, on every step.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from models.db import Executor
from models.driver_sql import fetch_all, fetch_in_transaction, fetch_one, fetch_pipelined, jsonb
from models.instances import (
    ENDING_COLUMNS,
    INSTANCE_ROW_COLUMNS,
    INSTANCE_ROW_NAMES,
    LOCK_INSTANCE_ROW,
    InstanceRow,
)


@dataclass(frozen=True)
class ClaimedStep:
    """The row a worker claimed: its fencing attempt and what it needs to run."""

    id: uuid.UUID
    instance_id: uuid.UUID
    node_id: str
    step_type: str
    attempt: int
    retry_count: int
    max_retries: int
    workflow_version_id: uuid.UUID | None = None


@dataclass(frozen=True)
class StepRef:
    """A step to send to its queue after commit (with its attempt time limit when known, and
    its instance's workflow version when known: the message then names node and version)."""

    id: uuid.UUID
    instance_id: uuid.UUID
    node_id: str
    step_type: str
    timeout_seconds: float | None = None
    workflow_version_id: uuid.UUID | None = None


def _json(statement: TextClause, *names: str) -> TextClause:
    """Bind the named parameters as JSONB (None stays SQL NULL)."""
    return statement.bindparams(
        *[bindparam(name, type_=JSONB(none_as_null=True)) for name in names]
    )


@dataclass(frozen=True)
class DeliveredStep:
    """What a delivery reads before claiming: the step and its instance's fixed facts."""

    id: uuid.UUID
    node_id: str
    step_type: str
    status: str
    attempt: int
    retry_count: int
    max_retries: int
    instance: InstanceRow

    def as_claimed(self) -> ClaimedStep:
        """The step as claiming it now would make it (its next attempt)."""
        return ClaimedStep(self.id, self.instance.id, self.node_id, self.step_type,
                           self.attempt + 1, self.retry_count, self.max_retries,
                           self.instance.workflow_version_id)


def read_delivered_step(executor: Executor, execution_id: uuid.UUID) -> DeliveredStep | None:
    """The step with its instance, in one round trip (no lock: the claim re-checks both)."""
    row = fetch_one(executor, f"""
        SELECT e.node_id, e.step_type, e.status, e.attempt,
               coalesce(e.retry_count, 0) AS retry_count,
               coalesce(e.max_retries, 0) AS max_retries, {INSTANCE_ROW_COLUMNS}
          FROM workflow_executions AS e
          JOIN workflow_instances AS i ON i.id = e.instance_id
         WHERE e.id = %(id)s
    """, {"id": execution_id})
    if row is None:
        return None
    node_id, step_type, status, attempt, retry_count, max_retries, *instance = row
    return DeliveredStep(execution_id, node_id, step_type, status, attempt, retry_count,
                         max_retries, InstanceRow(*instance))


def claim_step(
    executor: Executor, execution_id: uuid.UUID, lease_seconds: float, task_id: str | None,
    input_data: Any = None,
) -> ClaimedStep | None:
    """pending -> running with attempt+1 and a lease, only when due and the instance runs.

    One statement, so on an autocommit connection one round trip. The instance row is locked
    before the step row (the CTE must run before the join can hand the step to the UPDATE),
    the order every writer uses, to name this node as its `current_step`; the attempt's
    (redacted) input is recorded.

    The claim's commit does not wait for its WAL to reach disk (`synchronous_commit` off
    for this transaction only; on an autocommit connection, this statement's). Losing it
    in a database crash is harmless: the step is still `pending` at the previous attempt,
    so the worker's completion (fenced by attempt) changes nothing, the reconciler re-sends
    the step, and its new claim gets the same attempt number, hence the same idempotency
    key for outbound calls. Any later synchronous commit, such as the completion's,
    flushes the claim first, so a recorded result never outlives its claim.
    """
    row = fetch_one(executor, _CLAIM, _claim_parameters(execution_id, lease_seconds, task_id,
                                                        input_data))
    return None if row is None else ClaimedStep(*row)


def claim_expected_step(
    executor: Executor, execution_id: uuid.UUID, node_id: str, workflow_version_id: uuid.UUID,
    lease_seconds: float, task_id: str | None, input_data: Any = None,
) -> tuple[ClaimedStep, InstanceRow] | None:
    """`claim_step` for a delivery that already knows its node, without reading first.

    The task message names the step's node and workflow version; the claim succeeds only if
    both match (besides everything `claim_step` checks), and also returns the instance's row,
    which a step that reads nothing else needs to run. None: stale, or not what the message
    said; the caller then takes the reading path, which tells the two apart.
    """
    parameters = _claim_parameters(execution_id, lease_seconds, task_id, input_data)
    parameters.update(node=node_id, version=workflow_version_id)
    row = fetch_one(executor, _CLAIM_EXPECTED, parameters)
    if row is None:
        return None
    claimed = ClaimedStep(*row[:_CLAIMED_FIELDS])
    return claimed, InstanceRow(*row[_CLAIMED_FIELDS:])


def _claim_parameters(execution_id: uuid.UUID, lease_seconds: float, task_id: str | None,
                      input_data: Any) -> dict[str, Any]:
    return {"id": execution_id, "lease": float(lease_seconds), "task_id": task_id,
            "input": jsonb(input_data)}


def _claim_statement(expected_node: bool) -> str:
    """The claim's SQL; `expected_node` adds the message's node and version as conditions
    and returns the instance's row after the claimed step's columns."""
    fence = ("AND e.node_id = %(node)s"
             " AND i.workflow_version_id IS NOT DISTINCT FROM %(version)s"
             if expected_node else "")
    instance_columns = INSTANCE_ROW_COLUMNS if expected_node else "i.id, i.workflow_version_id"
    # Renamed: the driver's rows are named tuples, and `id` is taken by the step's.
    returned_instance = (", " + ", ".join(f"instance.{name} AS instance_row_{name}"
                                          for name in INSTANCE_ROW_NAMES)
                         if expected_node else "")
    return f"""
        WITH instance AS (
            UPDATE workflow_instances AS i SET current_step = e.node_id
              FROM workflow_executions AS e
             WHERE e.id = %(id)s AND i.status IS NOT DISTINCT FROM 'running'
               -- A scalar subquery, so the instance is found by its primary key: joined on
               -- e.instance_id, the planner may scan every running instance instead.
               AND i.id = (SELECT instance_id FROM workflow_executions WHERE id = %(id)s)
               AND e.status IS NOT DISTINCT FROM 'pending'
               AND (e.run_after IS NULL OR e.run_after <= now())
               {fence}
         RETURNING {instance_columns}
        )
        UPDATE workflow_executions AS e
           SET status = 'running', attempt = e.attempt + 1, started_at = now(),
               heartbeat_at = now(), completed_at = NULL, error_message = NULL,
               lease_expires_at = now() + make_interval(secs => %(lease)s),
               celery_task_id = %(task_id)s, run_after = NULL, updated_at = now(),
               input_data = %(input)s
          FROM instance, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
         WHERE e.id = %(id)s AND e.instance_id = instance.id
           AND e.status IS NOT DISTINCT FROM 'pending'
           AND (e.run_after IS NULL OR e.run_after <= now())
     RETURNING e.id, e.instance_id, e.node_id, e.step_type, e.attempt,
               coalesce(e.retry_count, 0) AS retry_count,
               coalesce(e.max_retries, 0) AS max_retries, instance.workflow_version_id
               {returned_instance}
    """


_CLAIM = _claim_statement(expected_node=False)
_CLAIM_EXPECTED = _claim_statement(expected_node=True)
_CLAIMED_FIELDS = len(fields(ClaimedStep))


def heartbeat(session: Session, execution_id: uuid.UUID, attempt: int,
              lease_seconds: float) -> bool:
    """Extend the lease of a running step; False when the attempt was superseded."""
    result = session.execute(
        text(
            """
            UPDATE workflow_executions
               SET heartbeat_at = now(),
                   lease_expires_at = now() + make_interval(secs => :lease)
             WHERE id = :id AND status = 'running' AND attempt = :attempt
         RETURNING id
            """
        ),
        {"id": execution_id, "attempt": attempt, "lease": float(lease_seconds)},
    ).one_or_none()
    return result is not None


# What ending a step writes: `finish_step` and the completions below share it.
_FINISH = """
    SET status = %(new_status)s, output_data = %(output)s, selected_handle = %(handle)s,
        error_message = %(error)s, completed_at = now(), run_after = NULL,
        lease_expires_at = NULL, updated_at = now(),
        duration_ms = CAST(EXTRACT(EPOCH FROM (now() - coalesce(started_at, now())))
                           * 1000 AS integer)
"""


def finish_step(
    session: Executor,
    execution_id: uuid.UUID,
    *,
    expected_status: str,
    new_status: str,
    output: Any,
    handle: str | None,
    error: str | None,
    attempt: int | None = None,
) -> bool:
    """running|waiting -> completed|failed, fenced by attempt when given."""
    row = fetch_one(session, f"""
        UPDATE workflow_executions {_FINISH}
         WHERE id = %(id)s AND status IS NOT DISTINCT FROM %(expected)s
           AND (CAST(%(attempt)s AS integer) IS NULL OR attempt = %(attempt)s)
     RETURNING id
    """, {"id": execution_id, "expected": expected_status, "new_status": new_status,
          "output": jsonb(output), "handle": handle, "error": error, "attempt": attempt})
    return row is not None


@dataclass(frozen=True)
class UnclaimedRun:
    """A pure step's run, recorded straight from `pending`: it is never claimed, so never
    `running`. What its claim would have written: the delivery's task id and the input."""

    task_id: str | None
    input_data: Any


def _listed(columns: Sequence[str], table: str = "") -> str:
    return ", ".join(f"{table}{column}" for column in columns)


# What ending an instance reads of its steps besides their states (`step_records_of`), and
# what it orders them by.
_ENDING = (*ENDING_COLUMNS, "created_at")
_RECORD = ("node_id", "status", "selected_handle", "output_data", *_ENDING)


# The step row a completion writes, and the instance's current step when it was unclaimed.
_FINISH_RUNNING = f"""
    finished AS (
        UPDATE workflow_executions {_FINISH}
         WHERE id = %(id)s AND status IS NOT DISTINCT FROM 'running' AND attempt = %(attempt)s
     RETURNING id, instance_id, {_listed(_RECORD)}
    )
"""
# Due and pending at the attempt before this one, as the claim checks it.
_DUE = """e.status IS NOT DISTINCT FROM 'pending' AND e.attempt + 1 = %(attempt)s
           AND (e.run_after IS NULL OR e.run_after <= now())"""
# What an unclaimed (pure) step's completion writes: its claim and its result at once.
_FINISH_FROM_PENDING = """
    SET status = 'completed', attempt = %(attempt)s, started_at = now(),
        heartbeat_at = now(), completed_at = now(), duration_ms = 0,
        error_message = NULL, run_after = NULL, lease_expires_at = NULL,
        celery_task_id = %(task_id)s, input_data = %(input)s,
        output_data = %(output)s, selected_handle = %(handle)s, updated_at = now()
"""
_FINISH_UNCLAIMED = f"""
    instance AS (
        UPDATE workflow_instances AS i SET current_step = e.node_id
          FROM workflow_executions AS e
         WHERE i.id = %(instance_id)s AND i.status IS NOT DISTINCT FROM 'running'
           AND e.id = %(id)s AND e.instance_id = i.id AND {_DUE}
     RETURNING i.id
    ),
    finished AS (
        UPDATE workflow_executions AS e {_FINISH_FROM_PENDING}
          FROM instance
         WHERE e.id = %(id)s AND e.instance_id = instance.id AND {_DUE}
     RETURNING e.id, e.instance_id, {_listed(_RECORD, 'e.')}
    )
"""
# Every step of the instance as planning reads them, the finished one as just written;
# with what ending the instance reads too (`models.instances.step_records_of`'s columns), so
# a completion that ends it need not read them again.
_STATES_AFTER_FINISH = f"""
    SELECT id, node_id, status, selected_handle,
           CASE WHEN %(outputs)s THEN output_data END AS output_data, {_listed(_ENDING)}
      FROM finished
    UNION ALL
    SELECT e.id, e.node_id, e.status, e.selected_handle,
           CASE WHEN %(outputs)s THEN e.output_data END, {_listed(_ENDING, 'e.')}
      FROM workflow_executions AS e
      JOIN finished AS f ON e.instance_id = f.instance_id AND e.id <> f.id
"""
_COMPLETE_READING_STATES = f"WITH {_FINISH_RUNNING} {_STATES_AFTER_FINISH}"
_COMPLETE_UNCLAIMED_READING_STATES = f"WITH {_FINISH_UNCLAIMED} {_STATES_AFTER_FINISH}"
_COMPLETE_UNCLAIMED = f"WITH {_FINISH_UNCLAIMED} SELECT id FROM finished"


def _completion_parameters(instance_id: uuid.UUID, execution_id: uuid.UUID, attempt: int,
                           output: Any, handle: str | None,
                           unclaimed: UnclaimedRun | None) -> dict[str, Any]:
    return {"instance_id": instance_id, "id": execution_id, "attempt": attempt,
            "new_status": "completed", "output": jsonb(output), "handle": handle,
            "error": None, "task_id": unclaimed.task_id if unclaimed else None,
            "input": jsonb(unclaimed.input_data) if unclaimed else None}


def lock_instance_and_complete_step(
    executor: Executor, instance_id: uuid.UUID, execution_id: uuid.UUID, attempt: int,
    output: Any, handle: str | None, with_outputs: bool = True,
    unclaimed: UnclaimedRun | None = None,
) -> tuple[InstanceRow | None, list[Any] | None]:
    """Lock the instance row, then complete the step (running -> completed, fenced by attempt).

    Returns the locked instance and every step of it as planning reads them
    (`models.instances.step_states_of`), the completed one as just written, with the
    columns `models.instances.step_records_of` adds (unordered); the steps are None when the
    attempt was superseded (nothing changed). Both statements go out together
    and run in that order (instance lock first, as every writer takes them): one round trip
    instead of two (the driver's BEGIN before them is one more). Without `with_outputs`,
    the steps' outputs read as None: a plan without edge conditions never looks at them,
    and sending and parsing every output of the instance on every step grew with the
    outputs' size.

    With `unclaimed`, the step goes pending -> completed as `attempt` instead (a pure
    step's run, see `complete_unclaimed_step`).
    """
    parameters = _completion_parameters(instance_id, execution_id, attempt, output, handle,
                                        unclaimed)
    parameters["outputs"] = with_outputs
    locked, states = fetch_pipelined(executor, [
        (LOCK_INSTANCE_ROW, {"id": instance_id}),
        (_COMPLETE_UNCLAIMED_READING_STATES if unclaimed else _COMPLETE_READING_STATES,
         parameters),
    ])
    instance = InstanceRow(*locked[0]) if locked else None
    return instance, (states or None)


@dataclass(frozen=True)
class StartedSuccessors:
    """What `complete_step_starting` wrote besides the completion."""

    progress: int
    # The successors' new step ids by node id (one that had a step already is missing).
    inserted: dict[str, uuid.UUID]


# Only while the instance runs: otherwise the caller completes the step the ordinary way.
_INSTANCE_RUNS = """EXISTS (SELECT 1 FROM workflow_instances
                    WHERE id = %(instance_id)s AND status IS NOT DISTINCT FROM 'running')"""


def _complete_starting_statement(unclaimed: bool) -> str:
    """The completion, its successors' rows and the instance's progress, in one statement.

    Data-modifying CTEs all see the snapshot the statement started with, taken after the
    instance lock (the statement before it in the transaction): the completed step still
    counts as undecided there, hence the `+ 1`, and the new pending rows would not count
    anyway.
    """
    finish = (f"{_FINISH_FROM_PENDING} WHERE e.id = %(id)s AND {_DUE}" if unclaimed else
              f"""{_FINISH} WHERE e.id = %(id)s AND e.status IS NOT DISTINCT FROM 'running'
                                AND e.attempt = %(attempt)s""")
    return f"""
        WITH finished AS (
            UPDATE workflow_executions AS e {finish}
               AND e.instance_id = %(instance_id)s AND {_INSTANCE_RUNS}
         RETURNING e.instance_id, e.node_id
        ),
        inserted AS (
            INSERT INTO workflow_executions
                (instance_id, node_id, step_type, status, max_retries, queued_at,
                 dispatched_at, attempt, retry_count)
            SELECT f.instance_id, n.node_id, n.step_type, 'pending', n.max_retries, now(),
                   now(), 0, 0
              FROM finished AS f,
                   jsonb_to_recordset(%(steps)s)
                   AS n(node_id text, step_type text, max_retries integer)
            ON CONFLICT (instance_id, node_id) DO NOTHING
         RETURNING node_id, id
        ),
        progress AS (
            SELECT f.instance_id, f.node_id,
                   100 * (count(*) FILTER (WHERE e.status IN ('completed', 'failed', 'skipped'))
                          + 1) / %(node_count)s AS value
              FROM finished AS f
              JOIN workflow_executions AS e ON e.instance_id = f.instance_id
             GROUP BY f.instance_id, f.node_id
        ),
        progressed AS (
            UPDATE workflow_instances AS i
               SET progress = p.value,
                   updated_at = CASE WHEN i.progress IS DISTINCT FROM p.value
                                     THEN now() ELSE i.updated_at END,
                   current_step = {"p.node_id" if unclaimed else "i.current_step"}
              FROM progress AS p
             WHERE i.id = p.instance_id
               AND {"TRUE" if unclaimed else "i.progress IS DISTINCT FROM p.value"}
        )
        SELECT p.value AS progress, ins.node_id, ins.id
          FROM progress AS p LEFT JOIN inserted AS ins ON TRUE
    """


_COMPLETE_STARTING = _complete_starting_statement(unclaimed=False)
_COMPLETE_UNCLAIMED_STARTING = _complete_starting_statement(unclaimed=True)
# The lock alone: nothing of the row is needed (its input may be large, and is parsed).
_LOCK_INSTANCE = "SELECT 1 FROM workflow_instances WHERE id = %(id)s FOR UPDATE"


def complete_step_starting(
    connection: Executor, instance_id: uuid.UUID, execution_id: uuid.UUID, attempt: int,
    output: Any, handle: str | None, successors: Sequence[NewStep], node_count: int,
    unclaimed: UnclaimedRun | None = None,
) -> StartedSuccessors | None:
    """Complete the step and insert its `successors` as pending steps, in a transaction of
    its own, sent whole: one round trip. Needs an autocommit connection.

    For a completion whose successors the graph alone decides
    (`engine.planner.ready_after_completion`): nothing is left to plan, so the transaction
    is the instance lock, then one statement for the completion, the new steps and the
    instance's progress (out of `node_count` nodes). The completion is fenced as
    `lock_instance_and_complete_step`'s is, and also on the instance running. None when the
    step was not completed (stale, or the instance is not running or gone): nothing changed.
    """
    parameters = _completion_parameters(instance_id, execution_id, attempt, output, handle,
                                        unclaimed)
    parameters.update(node_count=node_count, steps=jsonb([
        {"node_id": step.node_id, "step_type": step.step_type, "max_retries": step.max_retries}
        for step in successors]))
    _, rows = fetch_in_transaction(connection, [
        (_LOCK_INSTANCE, {"id": instance_id}),
        (_COMPLETE_UNCLAIMED_STARTING if unclaimed else _COMPLETE_STARTING, parameters),
    ])
    if not rows:
        return None
    progress = rows[0][0]
    return StartedSuccessors(progress, {node_id: step_id for _, node_id, step_id in rows
                                        if node_id is not None})


def complete_unclaimed_step(executor: Executor, instance_id: uuid.UUID,
                            execution_id: uuid.UUID, attempt: int, output: Any,
                            handle: str | None, unclaimed: UnclaimedRun) -> bool:
    """pending -> completed as `attempt`, for a pure step whose handler already ran.

    Claim and completion in one statement, under the instance lock the caller holds: only
    when the step is due and pending at the attempt before `attempt`, and the instance
    running (what the claim checks); the instance's current step becomes this node.
    False when any of that is not so (nothing changed).
    """
    row = fetch_one(executor, _COMPLETE_UNCLAIMED,
                    _completion_parameters(instance_id, execution_id, attempt, output, handle,
                                           unclaimed))
    return row is not None


def schedule_retry(session: Executor, execution_id: uuid.UUID, attempt: int,
                   delay_seconds: float, error: str, dispatch_now: bool) -> bool:
    """running -> pending with retry_count+1 and a run_after timer (fenced by attempt)."""
    row = session.execute(
        text("""
            UPDATE workflow_executions
               SET status = 'pending', retry_count = coalesce(retry_count, 0) + 1,
                   error_message = :error, lease_expires_at = NULL, heartbeat_at = NULL,
                   run_after = now() + make_interval(secs => :delay), queued_at = now(),
                   dispatched_at = CASE WHEN :dispatch_now
                                        THEN now() + make_interval(secs => :delay) END,
                   updated_at = now()
             WHERE id = :id AND status = 'running' AND attempt = :attempt
         RETURNING id
        """),
        {"id": execution_id, "attempt": attempt, "delay": float(delay_seconds),
         "error": error, "dispatch_now": dispatch_now},
    ).one_or_none()
    return row is not None


def start_timer(session: Executor, execution_id: uuid.UUID, attempt: int,
                seconds: float, output: Any) -> bool:
    """A running step sleeps in the database: run_after is its wake-up, no lease is held."""
    row = session.execute(
        _json(text("""
            UPDATE workflow_executions
               SET run_after = now() + make_interval(secs => :seconds), output_data = :output,
                   lease_expires_at = NULL, heartbeat_at = now(), updated_at = now()
             WHERE id = :id AND status = 'running' AND attempt = :attempt
         RETURNING id
        """), "output"),
        {"id": execution_id, "attempt": attempt, "seconds": float(seconds), "output": output},
    ).one_or_none()
    return row is not None


def wait_for_approval(session: Executor, execution_id: uuid.UUID, attempt: int,
                      output: Any) -> bool:
    """running -> waiting_approval: the step holds no worker until someone finishes it."""
    row = session.execute(
        _json(text("""
            UPDATE workflow_executions
               SET status = 'waiting_approval', output_data = :output,
                   lease_expires_at = NULL, updated_at = now()
             WHERE id = :id AND status = 'running' AND attempt = :attempt
         RETURNING id
        """), "output"),
        {"id": execution_id, "attempt": attempt, "output": output},
    ).one_or_none()
    return row is not None


@dataclass(frozen=True)
class NewStep:
    """A node the planner decided: pending (to run) or skipped (passed through if handle set)."""

    node_id: str
    step_type: str
    status: str
    max_retries: int
    handle: str | None = None
    passed_through: bool = False


def insert_steps(session: Executor, instance_id: uuid.UUID, steps: Sequence[NewStep],
                 progress: int | None = None) -> dict[str, uuid.UUID]:
    """Record decided nodes, and the instance's new `progress` if given, in one statement.

    A node decided before is left as it is. Returns the ids of the rows inserted, by node
    id. A passed-through node is skipped with its handle and an empty output; skipped rows
    are complete at once. The caller holds the instance row lock.
    """
    if not steps and progress is None:
        return {}
    return inserted_step_ids(fetch_all(session, *insert_steps_statement(
        instance_id, steps, progress)))


_INSERT_STEPS = """
    WITH progress AS (
        UPDATE workflow_instances SET progress = %(progress)s, updated_at = now()
         WHERE id = %(instance_id)s AND CAST(%(progress)s AS integer) IS NOT NULL
    )
    INSERT INTO workflow_executions
        (instance_id, node_id, step_type, status, max_retries, selected_handle,
         output_data, queued_at, dispatched_at, completed_at, attempt, retry_count)
    SELECT %(instance_id)s, n.node_id, n.step_type, n.status, n.max_retries, n.handle,
           CASE WHEN n.passed_through THEN '{{}}'::jsonb END, now(),
           CASE WHEN n.status = 'pending' THEN now() END,
           CASE WHEN n.status <> 'pending' THEN now() END, 0, 0
      -- One JSON parameter: the driver dumps it for half the CPU of six typed arrays.
      FROM jsonb_to_recordset(%(steps)s)
           AS n(node_id text, step_type text, status text, max_retries integer,
                handle text, passed_through boolean)
     {guard}
    ON CONFLICT (instance_id, node_id) DO NOTHING
    RETURNING node_id, id
"""
_INSERT_STEPS_ALWAYS = _INSERT_STEPS.format(guard="")
# For a statement sent before the one that may have started the instance has answered.
_INSERT_STEPS_IF_RUNNING = _INSERT_STEPS.format(guard="""
     WHERE EXISTS (SELECT 1 FROM workflow_instances
                    WHERE id = %(instance_id)s AND status = 'running')""")


def insert_steps_statement(instance_id: uuid.UUID, steps: Sequence[NewStep],
                           progress: int | None = None, *, if_running: bool = False,
                           ) -> tuple[str, dict[str, Any]]:
    """`insert_steps`' statement and parameters, to send with others; its rows give
    `inserted_step_ids`. `if_running`: insert nothing unless the instance is running."""
    return (_INSERT_STEPS_IF_RUNNING if if_running else _INSERT_STEPS_ALWAYS, {
        "instance_id": instance_id, "progress": progress,
        "steps": jsonb([{"node_id": step.node_id, "step_type": step.step_type,
                         "status": step.status, "max_retries": step.max_retries,
                         "handle": step.handle, "passed_through": step.passed_through}
                        for step in steps])})


def inserted_step_ids(rows: Sequence[Any]) -> dict[str, uuid.UUID]:
    """The ids of the step rows `insert_steps_statement` inserted, by node id."""
    return {row[0]: row[1] for row in rows}
