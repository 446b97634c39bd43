"""workflow_notifications queries: create once, claim with a lease, record the outcome.

Never commits. Delivery is fenced without extra columns: a claim moves `next_attempt_at`
to `now() + lease` (the row is not due while someone sends it) and returns that value as
the claim token; recording the outcome requires the token to be unchanged, so a late or
duplicate sender (whose lease was taken over) changes nothing. A sender killed mid-send
leaves the row `pending`; once its lease has passed the row is due again and is re-sent
with the same `idempotency_key`. All times come from the database clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from engine.statuses import NotificationStatus
from models.approval import WorkflowNotification


@dataclass(frozen=True)
class NewNotification:
    """What a node or a workflow notice asks to send."""

    notification_type: str
    channel: str
    recipients: list[str]
    subject: str | None
    message: str
    idempotency_key: str
    workflow_id: uuid.UUID | None = None
    instance_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None
    notification_data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClaimedNotification:
    """A row one sender holds until `lease_token` (its claim's next_attempt_at)."""

    id: uuid.UUID
    channel: str
    recipients: list[str]
    subject: str
    message: str
    idempotency_key: str
    retry_count: int
    notification_data: dict[str, Any]
    workflow_id: uuid.UUID | None
    instance_id: uuid.UUID | None
    execution_id: uuid.UUID | None
    notification_type: str
    lease_token: datetime


def create_notification(session: Session, new: NewNotification) -> tuple[uuid.UUID, bool]:
    """Insert a pending row due now, once per idempotency key.

    Returns (id, created): an existing row with the same key is returned unchanged, so a
    step that runs again does not send a second notification.
    """
    statement = text(
        """
        INSERT INTO workflow_notifications
               (id, workflow_id, instance_id, execution_id, notification_type, channel,
                recipients, subject, message, status, retry_count, notification_data,
                idempotency_key, next_attempt_at)
        VALUES (gen_random_uuid(), :workflow_id, :instance_id, :execution_id, :type, :channel,
                :recipients, :subject, :message, 'pending', 0, :data, :key, now())
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """
    ).bindparams(bindparam("recipients", type_=JSONB), bindparam("data", type_=JSONB))
    params = {
        "workflow_id": new.workflow_id, "instance_id": new.instance_id,
        "execution_id": new.execution_id, "type": new.notification_type,
        "channel": new.channel, "recipients": list(new.recipients),
        "subject": _clip(new.subject), "message": new.message,
        "data": new.notification_data or {}, "key": new.idempotency_key,
    }
    created = session.execute(statement, params).scalar_one_or_none()
    if created is not None:
        return created, True
    existing = session.scalar(
        select(WorkflowNotification.id)
        .where(WorkflowNotification.idempotency_key == new.idempotency_key))
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish in between
        raise LookupError(f"notification {new.idempotency_key!r} vanished")
    return existing, False


def _clip(subject: str | None) -> str | None:
    # The column is VARCHAR(255); a long rendered subject must not fail the whole step.
    return subject[:255] if subject is not None else None


def claim_notification(session: Session, notification_id: uuid.UUID,
                       lease_seconds: float) -> ClaimedNotification | None:
    """Take a due pending row for `lease_seconds`; None when not due, taken or final."""
    row = session.execute(
        text(
            """
            UPDATE workflow_notifications
               SET next_attempt_at = now() + make_interval(secs => :lease), updated_at = now()
             WHERE id = :id AND status = 'pending'
               AND coalesce(next_attempt_at, '-infinity') <= now()
         RETURNING id, channel, coalesce(recipients, '[]'::jsonb), coalesce(subject, ''),
                   coalesce(message, ''), coalesce(idempotency_key, id::text),
                   coalesce(retry_count, 0), coalesce(notification_data, '{}'::jsonb),
                   workflow_id, instance_id, execution_id, notification_type, next_attempt_at
            """
        ),
        {"id": notification_id, "lease": float(lease_seconds)},
    ).one_or_none()
    if row is None:
        return None
    return ClaimedNotification(*row)


def mark_sent(session: Session, claim: ClaimedNotification) -> bool:
    """pending -> sent; False when the claim was superseded."""
    return _fenced(session, claim, "status = 'sent', sent_at = now(), error_details = NULL", {})


def schedule_retry(session: Session, claim: ClaimedNotification, error: str,
                   delay_seconds: float) -> bool:
    """Count one retry and make the row due again after `delay_seconds`."""
    return _fenced(
        session, claim,
        "retry_count = coalesce(retry_count, 0) + 1, error_details = :error, "
        "next_attempt_at = now() + make_interval(secs => :delay)",
        {"error": error, "delay": float(delay_seconds)},
    )


def mark_failed(session: Session, claim: ClaimedNotification, error: str) -> bool:
    """pending -> failed with the last error; False when the claim was superseded."""
    return _fenced(session, claim,
                   "status = 'failed', error_details = :error, next_attempt_at = NULL",
                   {"error": error})


def _fenced(session: Session, claim: ClaimedNotification, assignments: str,
            params: dict[str, Any]) -> bool:
    # `assignments` is always one of this module's constant fragments, never user input.
    row = session.execute(
        text(
            f"""
            UPDATE workflow_notifications SET {assignments}, updated_at = now()
             WHERE id = :id AND status = 'pending' AND next_attempt_at = :token
         RETURNING id
            """
        ),
        {"id": claim.id, "token": claim.lease_token, **params},
    ).one_or_none()
    return row is not None


def due_notifications(session: Session, *, late_seconds: float = 0.0,
                      limit: int = 200) -> list[uuid.UUID]:
    """Pending rows due for at least `late_seconds`: never sent, retries due, lost sends."""
    return list(session.scalars(
        text(
            """
            SELECT id FROM workflow_notifications
             WHERE status = 'pending'
               AND coalesce(next_attempt_at, '-infinity')
                   <= now() - make_interval(secs => :late)
             ORDER BY next_attempt_at NULLS FIRST
             LIMIT :limit
            """
        ),
        {"late": float(late_seconds), "limit": limit},
    ).all())


def find_notification(session: Session, notification_id: uuid.UUID) -> WorkflowNotification | None:
    return session.get(WorkflowNotification, notification_id)


def notifications_query(*, instance_id: uuid.UUID | None = None, status: str | None = None,
                        execution_id: uuid.UUID | None = None) -> Select[Any]:
    """The filtered, unordered selection of notifications for a list endpoint."""
    statement = select(WorkflowNotification)
    if instance_id is not None:
        statement = statement.where(WorkflowNotification.instance_id == instance_id)
    if execution_id is not None:
        statement = statement.where(WorkflowNotification.execution_id == execution_id)
    if status is not None:
        statement = statement.where(WorkflowNotification.status == NotificationStatus(status))
    return statement


def notifications_of_instance(session: Session,
                              instance_id: uuid.UUID) -> list[WorkflowNotification]:
    return list(session.scalars(
        notifications_query(instance_id=instance_id)
        .order_by(WorkflowNotification.created_at, WorkflowNotification.id)).all())


def touch_due_notifications(session: Session, *, late_seconds: float,
                            limit: int = 200) -> list[uuid.UUID]:
    """Due rows nobody claimed for `late_seconds`, re-stamped so they are not picked again
    for another `late_seconds` (they stay due: a sender can still claim them at once).

    Safe with several reconcilers: rows locked by another pass are skipped.
    """
    return list(session.scalars(
        text(
            """
            UPDATE workflow_notifications SET next_attempt_at = now(), updated_at = now()
             WHERE id IN (SELECT id FROM workflow_notifications
                           WHERE status = 'pending'
                             AND coalesce(next_attempt_at, '-infinity')
                                 <= now() - make_interval(secs => :late)
                           ORDER BY next_attempt_at NULLS FIRST
                           LIMIT :limit FOR UPDATE SKIP LOCKED)
         RETURNING id
            """
        ),
        {"late": float(late_seconds), "limit": limit},
    ).all())


@dataclass(frozen=True)
class RequiredOutcome:
    """A step held for a `required` notification whose row reached a final status."""

    execution_id: uuid.UUID
    notification_id: uuid.UUID
    status: str
    error_details: str | None


def final_required_notifications(session: Session, *, execution_id: uuid.UUID | None = None,
                                 limit: int = 100) -> list[RequiredOutcome]:
    """Held notification steps whose latest notification is sent or failed."""
    rows = session.execute(
        text(
            """
            SELECT * FROM (
                SELECT DISTINCT ON (e.id) e.id AS execution_id, n.id, n.status, n.error_details
                  FROM workflow_executions AS e
                  JOIN workflow_notifications AS n ON n.execution_id = e.id
                 WHERE e.status = 'waiting_approval' AND e.step_type = 'notification'
                   AND (CAST(:execution_id AS uuid) IS NULL
                        OR e.id = CAST(:execution_id AS uuid))
                 ORDER BY e.id, n.created_at DESC
            ) AS latest
             WHERE latest.status IN ('sent', 'failed')
             LIMIT :limit
            """
        ),
        {"execution_id": execution_id, "limit": limit},
    ).all()
    return [RequiredOutcome(*row) for row in rows]


def reusable_step_notification(session: Session,
                               execution_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
    """The step's pending or sent notification, so a step run twice sends once.

    Locks the step row first: two deliveries of one step cannot both create a row.
    """
    session.execute(text("SELECT id FROM workflow_executions WHERE id = :id FOR UPDATE"),
                    {"id": execution_id})
    row = session.execute(
        select(WorkflowNotification.id, WorkflowNotification.status)
        .where(WorkflowNotification.execution_id == execution_id,
               WorkflowNotification.status.in_(("pending", "sent")))
        .order_by(WorkflowNotification.created_at.desc()).limit(1)
    ).one_or_none()
    return (row[0], str(row[1])) if row is not None else None
