"""Steps seen from outside a delivery: what the reconciler recovers and control closes or resets.

Finds pending steps never sent (or whose timer is due), running steps whose lease expired
or whose delay is over, and changes them only with conditional UPDATEs fenced like every
other transition (models/steps.py). Never commits. Statements about one instance's steps
compare a status with IS NOT DISTINCT FROM, or a list of them as `(... IN (...)) IS TRUE`,
so only the instance's index serves them (see `pending_steps_of`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from models.db import Executor
from models.driver_sql import fetch_all
from models.steps import StepRef


def pending_steps_of(session: Session, instance_id: uuid.UUID) -> list[StepRef]:
    """Pending, due steps of one instance, marked as dispatched now.

    The status is compared with IS NOT DISTINCT FROM so that only the instance's index
    serves it (models/steps.py says why): the status index also lists every earlier row
    version of every step that was once pending, and was scanned whole on each call.
    """
    rows = session.execute(
        text("""
            UPDATE workflow_executions SET dispatched_at = now()
             WHERE instance_id = :iid AND status IS NOT DISTINCT FROM 'pending'
               AND (run_after IS NULL OR run_after <= now())
         RETURNING id, instance_id, node_id, step_type
        """),
        {"iid": instance_id},
    ).all()
    return [StepRef(r[0], r[1], r[2], r[3]) for r in rows]


def due_unclaimed_steps(session: Session, redispatch_after_seconds: float,
                        limit: int = 500) -> list[StepRef]:
    """Pending steps of running instances never sent, sent long ago, or whose timer is due."""
    rows = session.execute(
        text("""
            UPDATE workflow_executions AS e SET dispatched_at = now()
              FROM workflow_instances AS i
             WHERE e.id IN (
                   SELECT s.id FROM workflow_executions s
                     JOIN workflow_instances j ON j.id = s.instance_id
                    WHERE j.status = 'running' AND s.status = 'pending'
                      AND (s.run_after IS NULL OR s.run_after <= now())
                      AND (s.dispatched_at IS NULL
                           OR s.dispatched_at < now() - make_interval(secs => :after)
                           OR (s.run_after IS NOT NULL AND s.dispatched_at < s.run_after))
                    ORDER BY s.queued_at LIMIT :limit
                    FOR UPDATE OF s SKIP LOCKED)
               AND i.id = e.instance_id
         RETURNING e.id, e.instance_id, e.node_id, e.step_type
        """),
        {"after": float(redispatch_after_seconds), "limit": limit},
    ).all()
    return [StepRef(r[0], r[1], r[2], r[3]) for r in rows]


def expired_leases(session: Session, lease_seconds: float,
                   limit: int = 500) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Running steps (not sleeping on a timer) whose worker stopped heart-beating."""
    rows = session.execute(
        text("""
            SELECT id, instance_id, attempt FROM workflow_executions
             WHERE status = 'running' AND run_after IS NULL
               AND coalesce(lease_expires_at,
                            heartbeat_at + make_interval(secs => :lease),
                            started_at + make_interval(secs => :lease)) < now()
             ORDER BY started_at LIMIT :limit
        """),
        {"lease": float(lease_seconds), "limit": limit},
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def release_lost_step(session: Session, execution_id: uuid.UUID, attempt: int) -> bool:
    """running (lease expired) -> pending for another delivery.

    The old worker is fenced out because its writes need status running with its attempt,
    and the next claim bumps the attempt.
    """
    row = session.execute(
        text("""
            UPDATE workflow_executions
               SET status = 'pending', lease_expires_at = NULL, heartbeat_at = NULL,
                   dispatched_at = NULL, queued_at = now(), updated_at = now()
             WHERE id = :id AND status = 'running' AND attempt = :attempt
               AND run_after IS NULL
         RETURNING id
        """),
        {"id": execution_id, "attempt": attempt},
    ).one_or_none()
    return row is not None


def due_timers(session: Session, limit: int = 500) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Running steps sleeping on a database timer (delay) whose wake-up time has come."""
    rows = session.execute(
        text("""
            SELECT id, instance_id FROM workflow_executions
             WHERE status = 'running' AND run_after IS NOT NULL AND run_after <= now()
             ORDER BY run_after LIMIT :limit
        """),
        {"limit": limit},
    ).all()
    return [(r[0], r[1]) for r in rows]


def stop_open_steps(session: Session, instance_id: uuid.UUID, reason: str) -> list[str]:
    """Close every unfinished step of a stopped instance; returns running Celery task ids.

    The attempt bump fences out any worker still running one of them. The statuses are
    compared as a filter (`IS TRUE`), so the rows are found by the instance's index alone
    (DEVELOPERS.md: the status index holds every dead row version in that status).
    """
    rows = session.execute(
        text("""
            UPDATE workflow_executions
               SET status = CASE WHEN status = 'pending' THEN 'skipped' ELSE 'failed' END,
                   error_message = :reason, completed_at = now(), run_after = NULL,
                   lease_expires_at = NULL, attempt = attempt + 1, updated_at = now()
             WHERE instance_id = :iid
               AND (status IN ('pending', 'running', 'waiting_approval')) IS TRUE
         RETURNING celery_task_id, (status = 'failed')
        """),
        {"iid": instance_id, "reason": reason},
    ).all()
    return [r[0] for r in rows if r[0] and r[1]]


def skip_pending_steps(executor: Executor, instance_id: uuid.UUID, reason: str) -> int:
    """pending -> skipped for an instance that ended: they would never be claimed.

    Running steps are left to finish (their late result is recorded, and changes nothing).
    """
    rows = fetch_all(executor, """
        UPDATE workflow_executions
           SET status = 'skipped', error_message = %(reason)s, completed_at = now(),
               run_after = NULL, updated_at = now()
         WHERE instance_id = %(iid)s AND status IS NOT DISTINCT FROM 'pending'
     RETURNING id
    """, {"iid": instance_id, "reason": reason})
    return len(rows)


def reset_for_retry(session: Session, instance_id: uuid.UUID) -> int:
    """Failed steps go back to pending; steps skipped (not passed through) are re-decided."""
    session.execute(
        text("""
            DELETE FROM workflow_executions
             WHERE instance_id = :iid AND status IS NOT DISTINCT FROM 'skipped'
               AND selected_handle IS NULL
        """),
        {"iid": instance_id},
    )
    result = session.execute(
        text("""
            UPDATE workflow_executions
               SET status = 'pending', retry_count = 0, error_message = NULL,
                   output_data = NULL, completed_at = NULL, run_after = NULL,
                   selected_handle = NULL, queued_at = now(), dispatched_at = NULL,
                   duration_ms = NULL, updated_at = now()
             WHERE instance_id = :iid AND status IS NOT DISTINCT FROM 'failed'
         RETURNING id
        """),
        {"iid": instance_id},
    ).all()
    return len(result)
