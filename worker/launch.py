"""Create workflow instances pinned to one definition version; never commits, never dispatches.

Used by the API's execute endpoint, triggers and subworkflows. The instance starts
`pending`; admission (worker.admission) moves it to `running` after the caller commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.statuses import InstanceStatus, Priority
from models.instance import WorkflowInstance
from models.instances import find_by_idempotency_key
from models.workflow import Workflow, WorkflowVersion


class LaunchError(Exception):
    """The workflow cannot start (inactive, unknown)."""


class InactiveWorkflowError(LaunchError):
    pass


class UnknownWorkflowError(LaunchError, LookupError):
    pass


def pinned_version(session: Session, workflow: Workflow) -> uuid.UUID:
    """The workflow's current version id, snapshotting the definition if it has none yet."""
    if workflow.current_version_id is not None:
        return workflow.current_version_id
    # Two launches racing to snapshot the same workflow: the second waits, then reuses it.
    session.refresh(workflow, with_for_update=True)
    if workflow.current_version_id is not None:
        return workflow.current_version_id
    revision = session.execute(
        select(func.coalesce(func.max(WorkflowVersion.revision), 0))
        .where(WorkflowVersion.workflow_id == workflow.id)
    ).scalar_one()
    version = WorkflowVersion(workflow_id=workflow.id, revision=int(revision) + 1,
                              version=workflow.version or "1.0.0",
                              workflow_data=workflow.workflow_data,
                              configuration=workflow.configuration,
                              created_by=workflow.updated_by or workflow.created_by)
    session.add(version)
    session.flush()
    workflow.current_version_id = version.id
    return version.id


def create_instance(
    session: Session,
    workflow: Workflow,
    input: Any,
    priority: str = Priority.NORMAL.value,
    idempotency_key: str | None = None,
    triggered_by: str | None = None,
    trigger_source: str | None = None,
    parent_execution_id: uuid.UUID | None = None,
) -> tuple[WorkflowInstance, bool]:
    """A new pending instance, or the first one with this idempotency key (created=False).

    Raises:
        InactiveWorkflowError: the workflow is not active.
    """
    if idempotency_key:
        existing = find_by_idempotency_key(session, workflow.id, idempotency_key)
        if existing is not None:
            return existing, False
    if workflow.is_active is False:
        raise InactiveWorkflowError(f"workflow {workflow.id} is not active")
    instance = WorkflowInstance(
        workflow_id=workflow.id, status=InstanceStatus.PENDING.value,
        **launch_values(input, priority, triggered_by, trigger_source),
        workflow_version_id=pinned_version(session, workflow),
        idempotency_key=idempotency_key or None, parent_execution_id=parent_execution_id,
        progress=0,
    )
    if not idempotency_key:
        session.add(instance)
        session.flush()
        return instance, True
    try:
        # Only a key can collide; the savepoint keeps the caller's transaction usable.
        with session.begin_nested():
            session.add(instance)
            session.flush()
    except IntegrityError:
        # Another request with the same key won the race; answer with its instance.
        existing = find_by_idempotency_key(session, workflow.id, idempotency_key)
        if existing is None:
            raise
        return existing, False
    return instance, True


def launch_values(input: Any, priority: str | None, triggered_by: str | None,
                   trigger_source: str | None) -> dict[str, Any]:
    """What both ways of creating an instance write from the caller's arguments."""
    return {"priority": priority or Priority.NORMAL.value,
            "execution_context": {"input": input if input is not None else {}},
            "triggered_by": triggered_by, "trigger_source": trigger_source}


def launch(session: Session, request: Any) -> uuid.UUID:
    """Adapter for trigger firing (worker.firing.Launcher): a LaunchRequest in, an id out.

    Raises:
        UnknownWorkflowError, InactiveWorkflowError.
    """
    workflow = session.get(Workflow, request.workflow_id)
    if workflow is None:
        raise UnknownWorkflowError(f"workflow {request.workflow_id} does not exist")
    instance, _ = create_instance(
        session, workflow, request.input, request.priority, request.idempotency_key,
        request.triggered_by, request.trigger_source,
        getattr(request, "parent_execution_id", None),
    )
    return instance.id
