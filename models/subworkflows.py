"""Queries linking subworkflow steps to their child instances; never commits.

A child instance names the step that started it in `parent_execution_id`. These queries find
children to admit, waiting steps whose child ended, and children whose parent ended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_FINAL = "('completed', 'failed', 'cancelled')"
# How many subworkflow levels an instance may sit under (a workflow calling itself stops).
MAX_DEPTH = 10


@dataclass(frozen=True)
class EndedChild:
    step_id: uuid.UUID
    child_id: uuid.UUID
    status: str
    output: Any
    error: str | None


def pending_children_of_running_parents(session: Session, limit: int = 100) -> list[uuid.UUID]:
    """Pending children whose parent instance is running, oldest first, locked for admission."""
    rows = session.execute(text(f"""
        SELECT child.id FROM workflow_instances child
          JOIN workflow_executions step ON step.id = child.parent_execution_id
          JOIN workflow_instances parent ON parent.id = step.instance_id
         WHERE child.status = 'pending' AND parent.status = 'running'
           AND step.status NOT IN {_FINAL}
         ORDER BY child.created_at, child.id
         LIMIT :limit
           FOR UPDATE OF child SKIP LOCKED
    """), {"limit": limit}).all()
    return [row[0] for row in rows]


def ended_children_of_waiting_steps(session: Session, limit: int = 100) -> list[EndedChild]:
    """Subworkflow steps still waiting although their child instance has ended."""
    # Only each step's latest child counts: a retried step started a new one.
    rows = session.execute(text(f"""
        SELECT step_id, child_id, status, output_data, error_details FROM (
            SELECT DISTINCT ON (step.id) step.id AS step_id, child.id AS child_id,
                   child.status, child.output_data, child.error_details, child.completed_at
              FROM workflow_executions step
              JOIN workflow_instances child ON child.parent_execution_id = step.id
             WHERE step.step_type = 'subworkflow' AND step.status = 'waiting_approval'
             ORDER BY step.id, child.created_at DESC, child.id DESC
        ) latest
         WHERE status IN {_FINAL}
         ORDER BY completed_at NULLS FIRST, step_id
         LIMIT :limit
    """), {"limit": limit}).all()
    return [EndedChild(row[0], row[1], row[2], row[3], row[4]) for row in rows]


def children_of_ended_parents(session: Session, limit: int = 100) -> list[uuid.UUID]:
    """Unfinished children whose parent instance ended (cancelled, failed or completed)."""
    rows = session.execute(text(f"""
        SELECT child.id FROM workflow_instances child
          JOIN workflow_executions step ON step.id = child.parent_execution_id
          JOIN workflow_instances parent ON parent.id = step.instance_id
         WHERE child.status NOT IN {_FINAL} AND parent.status IN {_FINAL}
         ORDER BY child.created_at, child.id
         LIMIT :limit
    """), {"limit": limit}).all()
    return [row[0] for row in rows]


def nesting_depth(session: Session, instance_id: uuid.UUID) -> int:
    """How many subworkflow steps stand above this instance (0 for a top-level instance)."""
    depth = session.execute(text("""
        WITH RECURSIVE chain(id, parent_step, depth) AS (
            SELECT id, parent_execution_id, 0 FROM workflow_instances WHERE id = :id
            UNION ALL
            SELECT parent.id, parent.parent_execution_id, chain.depth + 1
              FROM chain
              JOIN workflow_executions step ON step.id = chain.parent_step
              JOIN workflow_instances parent ON parent.id = step.instance_id
             WHERE chain.depth < :cap
        )
        SELECT max(depth) FROM chain
    """), {"id": instance_id, "cap": MAX_DEPTH + 1}).scalar_one()
    return int(depth or 0)


def children_of_step(session: Session, step_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """(id, status) of every child a subworkflow step started, oldest first."""
    rows = session.execute(text("""
        SELECT id, status FROM workflow_instances WHERE parent_execution_id = :step
         ORDER BY created_at, id
    """), {"step": step_id}).all()
    return [(row[0], row[1]) for row in rows]


def children_of_instance(session: Session, instance_id: uuid.UUID,
                         status: str) -> list[uuid.UUID]:
    """Children with `status` started by any step of this instance, oldest first."""
    rows = session.execute(text("""
        SELECT child.id FROM workflow_instances child
          JOIN workflow_executions step ON step.id = child.parent_execution_id
         WHERE step.instance_id = :iid AND child.status = :status
         ORDER BY child.created_at, child.id
    """), {"iid": instance_id, "status": status}).all()
    return [row[0] for row in rows]
