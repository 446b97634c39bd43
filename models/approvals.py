"""workflow_approvals queries: create once per waiting step, decide, expire; never commits.

A decision is one conditional UPDATE (`WHERE status = 'pending' AND not expired`), so two
concurrent decisions, or a decision racing the expiry job, change the row exactly once.
Expiry compares `expires_at` with the database clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from engine.statuses import ApprovalStatus
from models.approval import WorkflowApproval
from models.instance import WorkflowExecution


@dataclass(frozen=True)
class Decision:
    """A decided approval row and the step it resumes."""

    id: uuid.UUID
    execution_id: uuid.UUID
    status: str
    approver_user_id: str | None
    comment: str | None
    rejection_reason: str | None
    responded_at: datetime


def create_approval(session: Session, *, execution_id: uuid.UUID, approver_role: str,
                    message: str | None, expires_in_seconds: float | None,
                    data: Any) -> tuple[uuid.UUID, bool]:
    """A pending approval for the step, or its existing pending one (a step run twice).

    Locks the step row so two deliveries of the same step cannot both create one.
    Returns (id, created).
    """
    session.execute(select(WorkflowExecution.id).where(WorkflowExecution.id == execution_id)
                    .with_for_update())
    existing = session.scalar(
        select(WorkflowApproval.id)
        .where(WorkflowApproval.execution_id == execution_id,
               WorkflowApproval.status == ApprovalStatus.PENDING.value)
        .order_by(WorkflowApproval.created_at.desc()).limit(1))
    if existing is not None:
        return existing, False
    statement = text(
        """
        INSERT INTO workflow_approvals
               (id, execution_id, approver_role, status, requested_at, expires_at,
                approval_message, approval_data, notifications_sent)
        VALUES (gen_random_uuid(), :execution_id, :role, 'pending', now(),
                CASE WHEN CAST(:expires AS double precision) IS NULL THEN NULL
                     ELSE now() + make_interval(secs => CAST(:expires AS double precision))
                END,
                :message, :data, 0)
        RETURNING id
        """
    ).bindparams(bindparam("data", type_=JSONB(none_as_null=True)))
    created = session.execute(statement, {
        "execution_id": execution_id, "role": approver_role, "message": message,
        "expires": float(expires_in_seconds) if expires_in_seconds is not None else None,
        "data": data,
    }).scalar_one()
    return created, True


def recorded_step_input(session: Session, execution_id: uuid.UUID) -> dict[str, Any]:
    """A step's recorded config: rendered, with secret values already redacted."""
    recorded = session.scalar(select(WorkflowExecution.input_data)
                              .where(WorkflowExecution.id == execution_id))
    return recorded if isinstance(recorded, dict) else {}


def find_approval(session: Session, approval_id: uuid.UUID) -> WorkflowApproval | None:
    return session.get(WorkflowApproval, approval_id, populate_existing=True)


def decide_approval(session: Session, approval_id: uuid.UUID, *, approved: bool,
                    decided_by: str, comment: str | None) -> Decision | None:
    """pending (and not yet expired) -> approved | rejected; None when already decided."""
    row = session.execute(
        text(
            """
            UPDATE workflow_approvals
               SET status = :status, approver_user_id = :by, responded_at = now(),
                   comment = CASE WHEN :approved THEN :comment ELSE NULL END,
                   rejection_reason = CASE WHEN :approved THEN NULL ELSE :comment END,
                   updated_at = now()
             WHERE id = :id AND status = 'pending'
               AND (expires_at IS NULL OR expires_at > now())
         RETURNING id, execution_id, status, approver_user_id, comment, rejection_reason,
                   responded_at
            """
        ),
        {"id": approval_id, "approved": approved, "by": decided_by, "comment": comment,
         "status": (ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED).value},
    ).one_or_none()
    return Decision(*row) if row is not None else None


def expire_due_approvals(session: Session, limit: int = 100) -> list[Decision]:
    """pending rows past expires_at -> expired; safe with several reconcilers at once."""
    rows = session.execute(
        text(
            """
            UPDATE workflow_approvals AS a
               SET status = 'expired', responded_at = now(), updated_at = now(),
                   rejection_reason = 'approval expired'
             WHERE a.id IN (SELECT id FROM workflow_approvals
                             WHERE status = 'pending' AND expires_at <= now()
                             ORDER BY expires_at
                             LIMIT :limit FOR UPDATE SKIP LOCKED)
               AND a.status = 'pending'
         RETURNING a.id, a.execution_id, a.status, a.approver_user_id, a.comment,
                   a.rejection_reason, a.responded_at
            """
        ),
        {"limit": limit},
    ).all()
    return [Decision(*row) for row in rows]


def expire_instance_approvals(session: Session, instance_id: uuid.UUID,
                              reason: str = "instance cancelled") -> int:
    """Expire every pending approval of an instance (used when it is cancelled)."""
    result = session.execute(
        text(
            """
            UPDATE workflow_approvals AS a
               SET status = 'expired', responded_at = now(), updated_at = now(),
                   rejection_reason = :reason
              FROM workflow_executions AS e
             WHERE a.execution_id = e.id AND e.instance_id = :instance_id
               AND a.status = 'pending'
         RETURNING a.id
            """
        ),
        {"instance_id": instance_id, "reason": reason},
    ).all()
    return len(result)


def count_notification_sent(session: Session, approval_id: uuid.UUID) -> None:
    session.execute(
        text("UPDATE workflow_approvals SET notifications_sent = "
             "coalesce(notifications_sent, 0) + 1, updated_at = now() WHERE id = :id"),
        {"id": approval_id},
    )


def approvals_query(*, status: str | None = None, role: str | None = None,
                    instance_id: uuid.UUID | None = None) -> Select[Any]:
    """Approvals filtered for a list endpoint (unordered); `instance_id` via the step."""
    statement = select(WorkflowApproval)
    if status is not None:
        statement = statement.where(WorkflowApproval.status == ApprovalStatus(status).value)
    if role is not None:
        statement = statement.where(WorkflowApproval.approver_role == role)
    if instance_id is not None:
        statement = statement.where(WorkflowApproval.execution_id.in_(
            select(WorkflowExecution.id).where(WorkflowExecution.instance_id == instance_id)))
    return statement


def instance_of_approval(session: Session, approval: WorkflowApproval) -> uuid.UUID | None:
    if approval.execution_id is None:
        return None
    return session.scalar(select(WorkflowExecution.instance_id)
                          .where(WorkflowExecution.id == approval.execution_id))


def approvals_of_instance(session: Session, instance_id: uuid.UUID) -> list[WorkflowApproval]:
    return list(session.scalars(
        approvals_query(instance_id=instance_id)
        .order_by(WorkflowApproval.created_at, WorkflowApproval.id)).all())


def decided_waiting_approvals(session: Session, limit: int = 100) -> list[Decision]:
    """Approval steps still waiting although their approval was decided or expired."""
    rows = session.execute(text(
        """
        SELECT DISTINCT ON (a.execution_id) a.id, a.execution_id, a.status,
               a.approver_user_id, a.comment, a.rejection_reason, a.responded_at
          FROM workflow_approvals AS a
          JOIN workflow_executions AS e ON e.id = a.execution_id
         WHERE e.status = 'waiting_approval' AND e.step_type = 'approval'
           AND a.status IN ('approved', 'rejected', 'expired')
           AND NOT EXISTS (SELECT 1 FROM workflow_approvals AS p
                            WHERE p.execution_id = a.execution_id AND p.status = 'pending')
         ORDER BY a.execution_id, a.responded_at DESC
         LIMIT :limit
        """), {"limit": limit}).all()
    return [Decision(*row) for row in rows]
