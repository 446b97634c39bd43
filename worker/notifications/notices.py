"""Workflow notices (`configuration.notify`) and step notifications turned into pending rows.

`configuration.notify` maps an event (`on_failure`, `on_completion`,
`on_approval_requested`) to a list of `{"channel", "recipients", "subject"?, "message"?,
"secret"?}`. Subjects and messages are `{{ CEL }}` templates over the instance's expression
context plus, per event, `instance.status` / `instance.error` and `approval`. A notice whose
template cannot render is still sent, with the unrendered text, so a typo never silences an
alert. Rows are created in the caller's transaction (never commits); sending happens after
commit (`dispatch_notifications`) or, at the latest, from the reconciler.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from sqlalchemy.orm import Session

from engine.expressions import ExpressionError
from engine.statuses import NotificationChannel
from engine.templating import render_template_value
from models.notifications import NewNotification, create_notification

log = structlog.get_logger(__name__)

SEND_TASK = "flowyard.notification.send"
SEND_QUEUE = "notification"
EVENTS = ("on_failure", "on_completion", "on_approval_requested")
_CHANNELS = frozenset(channel.value for channel in NotificationChannel)

_DEFAULTS = {
    "on_failure": ("Workflow instance {{ instance.id }} failed",
                   "Workflow instance {{ instance.id }} failed: {{ instance.error }}"),
    "on_completion": ("Workflow instance {{ instance.id }} completed",
                      "Workflow instance {{ instance.id }} completed."),
    "on_approval_requested": ("Approval requested: {{ approval.message }}",
                              "Approval {{ approval.id }} needs a decision by role "
                              "{{ approval.approver_role }}: {{ approval.message }}"),
}


def notice_specs(configuration: Mapping[str, Any] | None, event: str) -> list[dict[str, Any]]:
    """The well-formed notice entries of one event (malformed ones are logged and skipped)."""
    notify = (configuration or {}).get("notify")
    entries = notify.get(event) if isinstance(notify, Mapping) else None
    if not isinstance(entries, list):
        return []
    specs = []
    for index, entry in enumerate(entries):
        if (isinstance(entry, Mapping) and entry.get("channel") in _CHANNELS
                and isinstance(entry.get("recipients"), list) and entry["recipients"]):
            specs.append(dict(entry))
        else:
            log.warning("notification.bad_notice", notice_event=event, index=index)
    return specs


def render(value: Any, context: Mapping[str, Any]) -> Any:
    try:
        return render_template_value(value, context)
    except ExpressionError as error:
        log.warning("notification.template_failed", error=str(error))
        return value


def create_notices(session: Session, *, configuration: Mapping[str, Any] | None, event: str,
                   context: Mapping[str, Any], key: str, workflow_id: uuid.UUID | None,
                   instance_id: uuid.UUID | None, execution_id: uuid.UUID | None = None,
                   extra_data: Mapping[str, Any] | None = None) -> list[uuid.UUID]:
    """One pending row per notice of `event`; `key` makes the rows' idempotency keys."""
    created: list[uuid.UUID] = []
    default_subject, default_message = _DEFAULTS[event]
    for index, spec in enumerate(notice_specs(configuration, event)):
        recipients = render(spec["recipients"], context)
        data: dict[str, Any] = {"event": event, **(extra_data or {})}
        if spec.get("secret") is not None:
            data["secret"] = spec["secret"]
        new = NewNotification(
            notification_type=event, channel=str(spec["channel"]),
            recipients=[str(r) for r in recipients] if isinstance(recipients, list) else [],
            subject=_text(render(spec.get("subject", default_subject), context)),
            message=_text(render(spec.get("message", default_message), context)) or "",
            idempotency_key=f"{key}:{event}:{index}", workflow_id=workflow_id,
            instance_id=instance_id, execution_id=execution_id, notification_data=data,
        )
        notification_id, fresh = create_notification(session, new)
        if fresh:
            created.append(notification_id)
    return created


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def dispatch_notifications(celery_app: Any, notification_ids: Iterable[uuid.UUID]) -> None:
    """Send one task per row after commit; a lost message is re-sent by the reconciler."""
    if celery_app is None:
        return
    for notification_id in notification_ids:
        try:
            celery_app.send_task(SEND_TASK, args=[str(notification_id)], queue=SEND_QUEUE)
        except Exception:  # the broker being down must not undo committed work
            log.warning("notification.dispatch_failed", notification_id=str(notification_id))


_FINISH_EVENTS = {"completed": "on_completion", "failed": "on_failure"}


def finish_notices_wanted(configuration: Mapping[str, Any] | None, status: str) -> bool:
    """Whether an instance ending with this status has workflow notices to create."""
    event = _FINISH_EVENTS.get(status)
    return event is not None and bool(notice_specs(configuration, event))


def notify_instance_finished(session: Session, instance: Any,
                             configuration: Mapping[str, Any] | None,
                             steps: Iterable[Any] = ()) -> list[uuid.UUID]:
    """Create the `on_completion` / `on_failure` rows of an instance that just ended.

    Call it in the transaction that sets the final status (after `completed_at` is set);
    other statuses create nothing. The reconciler sends the rows if nobody dispatches them.
    """
    from engine.expressions import expression_context
    from worker.planning import instance_facts, instance_input, nodes_context

    if not finish_notices_wanted(configuration, instance.status):
        return []
    event = _FINISH_EVENTS[instance.status]
    facts = {**instance_facts(instance), "status": instance.status,
             "error": instance.error_details or ""}
    context = expression_context(instance_input(instance), nodes_context(list(steps)), facts)
    # completed_at makes a second ending (after an instance retry) a notice of its own.
    ended = instance.completed_at.isoformat() if instance.completed_at else "end"
    return create_notices(session, configuration=configuration, event=event, context=context,
                          key=f"{instance.id}:{ended}", workflow_id=instance.workflow_id,
                          instance_id=instance.id)
