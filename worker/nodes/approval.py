"""The `approval` node and the decisions that resume it; holds no worker slot while waiting.

Config (rendered): `approver_role` (default `admin`), `message`, `expires_in_seconds`,
`data`. The handler creates a pending `workflow_approvals` row (once per step), queues the
workflow's `on_approval_requested` notices, and suspends the step (`waiting_approval`).
A decision (API), an expiry or a cancellation moves the row out of `pending` with one
conditional UPDATE; the step then completes with output `{"approved", "decided_by",
"comment"}` through the `approved` or `rejected` handle. Expiry counts as rejection.
If a decision lands before the step is recorded as waiting, the reconciler's
`resume_decided_approvals` finishes it: a decided approval never leaves its step hanging.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.document import as_number
from models.approvals import (
    Decision,
    create_approval,
    decide_approval,
    decided_waiting_approvals,
    expire_due_approvals,
    recorded_step_input,
)
from models.db import transaction
from models.instance import WorkflowInstance
from models.workflow import WorkflowVersion
from worker.errors import PermanentNodeError
from worker.nodes import with_run
from worker.notifications.notices import create_notices, dispatch_notifications
from worker.results import Suspend
from worker.runtime import WorkerRuntime

DEFAULT_APPROVER_ROLE = "admin"


def run(config: dict[str, Any], context: Any) -> Suspend:
    role = config.get("approver_role") or DEFAULT_APPROVER_ROLE
    expires = config.get("expires_in_seconds")
    expires_in = as_number(expires) if expires is not None else None
    if expires is not None and (expires_in is None or expires_in <= 0):
        raise PermanentNodeError(f"expires_in_seconds must be a positive number, got {expires!r}")
    with transaction(context.session_factory) as session:
        # The recorded (redacted) config: a `$secret` in message or data is never stored.
        recorded = recorded_step_input(session, context.step_id)
        message = recorded.get("message", config.get("message"))
        approval_id, created = create_approval(
            session, execution_id=context.step_id, approver_role=str(role),
            message=message if message is None or isinstance(message, str) else str(message),
            expires_in_seconds=expires_in, data=recorded.get("data", config.get("data")))
        notices = _request_notices(session, context, approval_id, str(role), message) \
            if created else []
    dispatch_notifications(_celery_app(), notices)
    return Suspend(output={"approval_id": str(approval_id)})


def _request_notices(session: Session, context: Any, approval_id: uuid.UUID, role: str,
                     message: Any) -> list[uuid.UUID]:
    row = session.execute(
        select(WorkflowInstance.workflow_id, WorkflowVersion.configuration)
        .join(WorkflowVersion, WorkflowVersion.id == WorkflowInstance.workflow_version_id)
        .where(WorkflowInstance.id == context.instance_id)).one_or_none()
    if row is None:
        return []
    expressions = dict(context.expressions)
    expressions["approval"] = {"id": str(approval_id), "approver_role": role,
                               "message": message or "", "node_id": context.node_id}
    return create_notices(
        session, configuration=row[1], event="on_approval_requested", context=expressions,
        key=str(approval_id), workflow_id=row[0], instance_id=context.instance_id,
        execution_id=context.step_id, extra_data={"approval_id": str(approval_id)})


def _celery_app() -> Any:
    from celery import current_task

    return current_task.app if current_task else None


def decision_output(decision: Decision) -> tuple[dict[str, Any], str]:
    """The step's output and handle for a decided (or expired) approval."""
    approved = decision.status == "approved"
    comment = decision.comment if approved else decision.rejection_reason
    output = {"approved": approved, "decided_by": decision.approver_user_id, "comment": comment}
    return output, "approved" if approved else "rejected"


def record_decision(session: Session, runtime: WorkerRuntime, approval_id: uuid.UUID, *,
                    approved: bool, decided_by: str,
                    comment: str | None) -> tuple[Decision | None, Any]:
    """Decide a pending approval and finish its step in the caller's transaction.

    Returns (decision, after): decision None when the approval is no longer pending
    (decided, expired, or past its expiry time); pass `after` to `resume_after_commit`
    once committed. Never commits.
    """
    from worker.orchestrator import finish_waiting_step

    decision = decide_approval(session, approval_id, approved=approved,
                               decided_by=decided_by, comment=comment)
    if decision is None:
        return None, None
    output, handle = decision_output(decision)
    return decision, finish_waiting_step(session, runtime, decision.execution_id, output, handle)


def resume_after_commit(runtime: WorkerRuntime, after: Any) -> None:
    """Send the steps a committed decision made ready (no-op when it resumed nothing)."""
    from worker.orchestrator import apply_after_commit

    if after is not None:
        apply_after_commit(runtime, after)


def decide(runtime: WorkerRuntime, approval_id: uuid.UUID, *, approved: bool, decided_by: str,
           comment: str | None) -> Decision | None:
    """`record_decision` in its own transaction, then resume the flow."""
    with transaction(runtime.session_factory) as session:
        decision, after = record_decision(session, runtime, approval_id, approved=approved,
                                          decided_by=decided_by, comment=comment)
    resume_after_commit(runtime, after)
    return decision


def expire_approvals(runtime: WorkerRuntime) -> int:
    """Reconciler job: pending approvals past expires_at become `expired` (a rejection)."""
    with transaction(runtime.session_factory) as session:
        expired = expire_due_approvals(session)
    if expired:
        resume_decided_approvals(runtime)
    return len(expired)


def resume_decided_approvals(runtime: WorkerRuntime) -> int:
    """Reconciler job: finish waiting approval steps whose approval is no longer pending."""
    from worker.orchestrator import apply_after_commit, finish_waiting_step

    with runtime.session_factory() as session:
        waiting = decided_waiting_approvals(session)
    resumed = 0
    for decision in waiting:
        output, handle = decision_output(decision)
        with transaction(runtime.session_factory) as session:
            after = finish_waiting_step(session, runtime, decision.execution_id, output, handle)
        if after is not None:
            apply_after_commit(runtime, after)
            resumed += 1
    return resumed


NODE_TYPE = with_run("approval", run)
