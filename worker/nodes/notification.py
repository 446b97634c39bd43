"""The `notification` node: records one notification row and hands it to the sender.

Config (already rendered and secret-resolved by the orchestrator): `channel`,
`recipients`, `subject`, `message`, `secret` (webhook signing key), `required`.
Output `{"notification_id", "status"}`.

- Not required (default): the step completes at once with status `pending` (or `sent` when
  a previous run of this step already sent it); delivery and its retries happen on the
  `notification` queue, and a final failure never fails the workflow.
- `required: true`: the step is held (`waiting_approval`, no worker slot) until the row is
  final; then it completes with status `sent`, or fails with the last delivery error (so the
  node's `on_error` / error edges apply). Whichever comes first resumes it: the sender right
  after the outcome, or the reconciler.
A step that runs again reuses its pending or sent row: one notification per step.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from engine.nodetypes import NOTIFICATION_CHANNELS, is_secret_ref
from models.approvals import recorded_step_input
from models.db import transaction
from models.notifications import (
    NewNotification,
    create_notification,
    reusable_step_notification,
)
from models.secret_store import encrypt_value
from worker.errors import PermanentNodeError
from worker.nodes import with_run
from worker.notifications.notices import dispatch_notifications
from worker.results import Suspend

_SEALABLE = ("recipients", "subject", "message")


def run(config: dict[str, Any], context: Any) -> Any:
    required = config.get("required") is True
    recipients = config.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise PermanentNodeError("notification recipients must be a non-empty list")
    if config.get("channel") not in NOTIFICATION_CHANNELS:
        raise PermanentNodeError(f"notification channel must be one of {NOTIFICATION_CHANNELS},"
                                 f" got {config.get('channel')!r}")
    with transaction(context.session_factory) as session:
        existing = reusable_step_notification(session, context.step_id)
        if existing is not None:
            notification_id, status = existing
        else:
            recorded = recorded_step_input(session, context.step_id)
            public, sealed = _split_secret_values(config, recorded, context.settings)
            data = _data(config, context, required)
            if sealed is not None:
                data["sealed"] = sealed
            notification_id, _ = create_notification(session, NewNotification(
                notification_type="node", channel=str(config.get("channel")),
                recipients=[str(recipient) for recipient in public["recipients"]],
                subject=_optional_text(public["subject"]),
                message=_optional_text(public["message"]) or "",
                idempotency_key=context.idempotency_key,
                instance_id=context.instance_id, execution_id=context.step_id,
                workflow_id=_workflow_id(context), notification_data=data,
            ))
            status = "pending"
    if status == "pending":
        dispatch_notifications(_celery_app(), [notification_id])
    output = {"notification_id": str(notification_id), "status": status}
    if required and status != "sent":
        return Suspend(output=output)
    return output


def _split_secret_values(config: dict[str, Any], recorded: dict[str, Any],
                         settings: Any) -> tuple[dict[str, Any], str | None]:
    """Redacted recipients/subject/message for the row's columns (the API shows them), and
    the resolved values that differ, encrypted, for the sender (e.g. a Slack URL `$secret`).
    """
    public = {field: _show_references(recorded.get(field, config.get(field)))
              for field in _SEALABLE}
    differing = {field: config.get(field) for field in _SEALABLE
                 if public[field] != config.get(field)}
    if not differing or not settings.secret_keys:
        # Nothing was redacted (no `$secret` can resolve without keys either).
        return {field: config.get(field) for field in _SEALABLE}, None
    sealed = encrypt_value(settings, json.dumps(differing)).decode("ascii")
    return public, sealed


def _show_references(value: Any) -> Any:
    """`{"$secret": "NAME"}` shown as its JSON text (the columns hold strings)."""
    if is_secret_ref(value):
        return json.dumps(value)
    if isinstance(value, list):
        return [_show_references(item) for item in value]
    return value


def _data(config: dict[str, Any], context: Any, required: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"node_id": context.node_id, "required": required}
    secret = config.get("secret")
    if isinstance(secret, str) and secret:
        if context.settings.secret_keys:
            # The key may come from a `$secret`: never store it resolved and in clear.
            data["secret_ciphertext"] = encrypt_value(context.settings, secret).decode("ascii")
        else:
            # Without keys no `$secret` can resolve, so this is the literal from the
            # workflow document itself (the API never shows it).
            data["secret"] = secret
    return data


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _workflow_id(context: Any) -> uuid.UUID | None:
    facts = context.expressions.get("instance") or {}
    try:
        return uuid.UUID(str(facts.get("workflow_id")))
    except ValueError:
        return None


def _celery_app() -> Any:
    """The app of the task running this handler (None outside a worker: reconciler sends)."""
    from celery import current_task

    return current_task.app if current_task else None


NODE_TYPE = with_run("notification", run)
