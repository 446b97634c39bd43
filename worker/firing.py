"""Starting an instance for a trigger firing (webhook, schedule, event); never commits.

Every firing counts on its trigger (`last_triggered`, `trigger_count`, database clock) in the
same transaction that creates the instance, so a rolled-back launch leaves no count behind.
The instance carries `triggered_by` = the trigger type and `trigger_source` = the trigger id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from models.triggers import record_firing
from models.workflow import WorkflowTrigger


@dataclass(frozen=True)
class LaunchRequest:
    """What a trigger asks the launcher to start."""

    workflow_id: uuid.UUID
    input: dict[str, Any] = field(default_factory=dict)
    triggered_by: str = "manual"
    trigger_source: str | None = None
    idempotency_key: str | None = None
    priority: str = "normal"


# Creates a pending instance in the caller's transaction and returns its id.
Launcher = Callable[[Session, LaunchRequest], uuid.UUID]


def trigger_launch_request(
    trigger: WorkflowTrigger, payload: dict[str, Any], *, idempotency_key: str | None = None
) -> LaunchRequest:
    return LaunchRequest(
        workflow_id=trigger.workflow_id,
        input=payload,
        triggered_by=trigger.trigger_type,
        trigger_source=str(trigger.id),
        idempotency_key=idempotency_key,
    )


def fire_trigger(
    session: Session,
    launch: Launcher,
    trigger: WorkflowTrigger,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
) -> uuid.UUID | None:
    """Count the firing and start the instance; None when the trigger is no longer active."""
    if not record_firing(session, trigger.id):
        return None
    return launch(session, trigger_launch_request(trigger, payload,
                                                  idempotency_key=idempotency_key))
