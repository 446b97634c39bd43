"""The Celery task `flowyard.notification.send` and the reconciler jobs of notifications.

`register_notification_tasks(app, runtime)` is called by `make_celery`; `periodic_jobs()`
lists the jobs `flowyard scheduler` adds to the reconciler: send due rows nobody claimed
(new rows, due retries, sends whose worker died), and resume steps held for a `required`
notification once it is final. Must not send anything itself: `NotificationSender` does.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.orm import Session

from models.approvals import count_notification_sent
from models.db import transaction
from models.notifications import (
    ClaimedNotification,
    final_required_notifications,
    touch_due_notifications,
)
from worker.notifications.notices import SEND_QUEUE, SEND_TASK, dispatch_notifications
from worker.notifications.registry import build_channels
from worker.notifications.sender import NotificationSender
from worker.runtime import WorkerRuntime

log = structlog.get_logger(__name__)

# Retries due sooner than this go back to the queue with a countdown; later ones wait for
# the reconciler (long countdowns are unsafe with Redis' visibility timeout).
COUNTDOWN_LIMIT_SECONDS = 5.0


def make_sender(runtime: WorkerRuntime) -> NotificationSender:
    return NotificationSender(runtime.settings, runtime.session_factory,
                              build_channels(runtime.settings), on_final=_count_approval_notice)


def _count_approval_notice(session: Session, claim: ClaimedNotification, status: str,
                           error: str | None) -> None:
    approval_id = claim.notification_data.get("approval_id")
    if status == "sent" and isinstance(approval_id, str):
        count_notification_sent(session, uuid.UUID(approval_id))


def register_notification_tasks(app: Any, runtime: WorkerRuntime) -> None:
    """Add the send task (queue `notification`) to a Celery app built by `make_celery`."""
    sender = make_sender(runtime)

    def send_notification(notification_id: str) -> str:
        result = sender.deliver(uuid.UUID(notification_id))
        if result.status == "retry" and result.retry_in is not None \
                and result.retry_in <= COUNTDOWN_LIMIT_SECONDS:
            app.send_task(SEND_TASK, args=[notification_id], queue=SEND_QUEUE,
                          countdown=result.retry_in)
        if result.status in ("sent", "failed") and result.execution_id is not None:
            resume_required_steps(runtime, result.execution_id)
        return result.status

    # Not shared, as node tasks (worker/celery_app.py): this app's runtime only.
    app.task(name=SEND_TASK, acks_late=True, reject_on_worker_lost=True, shared=False,
             ignore_result=True)(send_notification)
    routes = dict(app.conf.task_routes or {})
    routes[SEND_TASK] = {"queue": SEND_QUEUE}
    app.conf.task_routes = routes


def resume_required_steps(runtime: WorkerRuntime, execution_id: uuid.UUID | None = None) -> int:
    """Finish held `required` notification steps whose notification is final."""
    from worker.orchestrator import apply_after_commit, finish_waiting_step

    with runtime.session_factory() as session:
        outcomes = final_required_notifications(session, execution_id=execution_id)
    resumed = 0
    for outcome in outcomes:
        output = {"notification_id": str(outcome.notification_id), "status": outcome.status}
        error = None if outcome.status == "sent" else \
            f"notification {outcome.notification_id} failed: {outcome.error_details}"
        with transaction(runtime.session_factory) as session:
            after = finish_waiting_step(session, runtime, outcome.execution_id, output,
                                        failed_error=error)
        if after is not None:
            apply_after_commit(runtime, after)
            resumed += 1
    return resumed


def dispatch_due_notifications(runtime: WorkerRuntime) -> int:
    """Queue rows that are due but unclaimed for a moment (never sent, retry, lost send)."""
    late = max(1.0, 2 * runtime.settings.reconcile_interval_seconds)
    with transaction(runtime.session_factory) as session:
        due = touch_due_notifications(session, late_seconds=late)
    dispatch_notifications(runtime.celery, due)
    return len(due)


def periodic_jobs() -> list[tuple[str, Any]]:
    """(name, job) pairs for the reconciler's job list, approvals included."""
    from worker.nodes.approval import expire_approvals, resume_decided_approvals

    return [
        ("notifications.dispatch_due", dispatch_due_notifications),
        ("notifications.resume_required", resume_required_steps),
        ("approvals.expire", expire_approvals),
        ("approvals.resume_decided", resume_decided_approvals),
    ]
