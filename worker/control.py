"""Operator control of instances: pause, resume, cancel, retry; never commits.

Each function changes the instance in the caller's transaction and returns a `ControlResult`
whose `after_commit` the caller runs once committed (admission, revocation). A transition
the current status does not allow raises `TransitionError` and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from kombu.exceptions import OperationalError as BrokerUnreachable
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine.statuses import InstanceStatus
from engine.transitions import TransitionError as EngineTransitionError
from engine.transitions import transition
from models.instance import WorkflowInstance
from models.instances import lock_instance
from models.step_recovery import reset_for_retry, stop_open_steps
from models.subworkflows import children_of_instance
from worker.runtime import WorkerRuntime

log = structlog.get_logger("flowyard.control")


class ControlError(Exception):
    """Root of control failures."""


class InstanceNotFoundError(ControlError, LookupError):
    pass


class TransitionError(ControlError):
    """The instance's status does not allow this action (HTTP 409)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} an instance that is {status}")
        self.action = action
        self.status = status


@dataclass
class ControlResult:
    instance: WorkflowInstance
    revoke_task_ids: list[str] = field(default_factory=list)


def _locked(session: Session, instance_id: uuid.UUID) -> WorkflowInstance:
    instance = lock_instance(session, instance_id)
    if instance is None:
        raise InstanceNotFoundError(f"workflow instance {instance_id} does not exist")
    return instance


def _require(instance: WorkflowInstance, action: str) -> None:
    try:
        transition(instance.status, action)
    except EngineTransitionError:
        raise TransitionError(action, instance.status) from None


def pause(session: Session, instance_id: uuid.UUID) -> ControlResult:
    """running -> paused: running steps finish and are recorded; nothing new starts.

    Its running subworkflow children (and theirs) are paused with it.
    """
    instance = _locked(session, instance_id)
    _require(instance, "pause")
    instance.status = InstanceStatus.PAUSED.value
    instance.paused_at = _now(session)
    _propagate(session, instance.id, InstanceStatus.RUNNING.value, pause)
    return ControlResult(instance)


def resume(session: Session, instance_id: uuid.UUID) -> ControlResult:
    """paused -> pending; admission starts it again (and sends its held steps).

    Its paused subworkflow children (and theirs) are resumed with it.
    """
    instance = _locked(session, instance_id)
    _require(instance, "resume")
    instance.status = InstanceStatus.PENDING.value
    instance.paused_at = None
    _propagate(session, instance.id, InstanceStatus.PAUSED.value, resume)
    return ControlResult(instance)


def _propagate(session: Session, instance_id: uuid.UUID, status: str,
               action: Callable[[Session, uuid.UUID], ControlResult]) -> None:
    """Apply `action` to the children in `status`; one that changed meanwhile is skipped."""
    for child_id in children_of_instance(session, instance_id, status):
        try:
            action(session, child_id)
        except TransitionError:
            continue


def cancel(session: Session, instance_id: uuid.UUID) -> ControlResult:
    """Any non-final status -> cancelled; open steps close, pending approvals expire."""
    instance = _locked(session, instance_id)
    _require(instance, "cancel")
    instance.status = InstanceStatus.CANCELLED.value
    instance.completed_at = _now(session)
    instance.error_details = "cancelled"
    task_ids = stop_open_steps(session, instance.id, "cancelled")
    session.execute(
        text("""
            UPDATE workflow_approvals SET status = 'expired', responded_at = now(),
                   updated_at = now()
             WHERE status = 'pending' AND execution_id IN
                   (SELECT id FROM workflow_executions WHERE instance_id = :iid)
        """),
        {"iid": instance.id},
    )
    return ControlResult(instance, revoke_task_ids=task_ids)


def retry(session: Session, instance_id: uuid.UUID) -> ControlResult:
    """failed -> pending: failed steps run again, completed ones keep their outputs."""
    instance = _locked(session, instance_id)
    _require(instance, "retry")
    reset_for_retry(session, instance.id)
    instance.status = InstanceStatus.PENDING.value
    instance.error_details = None
    instance.completed_at = None
    instance.output_data = None
    # A retried instance gets a fresh execution budget.
    instance.deadline_at = None
    return ControlResult(instance)


def after_control(runtime: WorkerRuntime, result: ControlResult) -> None:
    """After commit: revoke what was running, then let admission fill the freed slots.

    A revoke the broker cannot take is logged, not raised: it only stops work early. The
    steps it would stop are already decided in the database, so a run that goes on finds
    its result refused (the fenced completion) when it ends.
    """
    from worker.admission import admit_and_dispatch

    if result.revoke_task_ids and runtime.celery is not None:
        try:
            runtime.celery.control.revoke(result.revoke_task_ids)
        except BrokerUnreachable as error:
            log.warning("control.revoke_failed", tasks=len(result.revoke_task_ids),
                        error=str(error), effect="those steps run to their end, unrecorded")
    admit_and_dispatch(runtime)


def _now(session: Session) -> datetime:
    """The database clock (never the worker's)."""
    now: datetime = session.execute(select(func.clock_timestamp())).scalar_one()
    return now
