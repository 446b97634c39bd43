"""Admission: at most MAX_CONCURRENT_WORKFLOWS instances run; pending ones start by priority, age.

Decided in PostgreSQL under one advisory transaction lock, so every API replica, worker and
scheduler agree. Only this module moves an instance to `running`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.statuses import InstanceStatus
from models.db import Executor, transaction
from models.instance import WorkflowInstance
from models.instances import (
    StartedInstance,
    any_waiting_for_a_pass,
    count_running,
    lock_admission_and_start,
    lock_instance,
    mark_deferred,
    pick_pending,
    take_admission_lock,
)
from models.step_recovery import pending_steps_of
from models.steps import StepRef
from models.subworkflows import pending_children_of_running_parents
from worker.planning import Advance, advance
from worker.runtime import WorkerRuntime


@dataclass(frozen=True)
class Pass:
    """What one admission pass did."""

    dispatch: list[StepRef]  # steps to send after commit
    ended: bool  # an instance ended while starting (its slot is free again)
    deferred: bool  # it left new instances waiting for a slot (`mark_deferred`)


def admit(session: Session, runtime: WorkerRuntime) -> Pass:
    """Start as many pending instances as there are free slots; never commits."""
    take_admission_lock(session)
    dispatch: list[StepRef] = []
    ended = _admit_children(session, runtime, dispatch)
    free = runtime.settings.max_concurrent_workflows - count_running(session)
    started = pick_pending(session, free)
    for instance_id in started:
        ended = _admit_one(session, runtime, instance_id, dispatch) or ended
    # Room ran out: whoever still waits needs a later pass, not just its own launch's.
    deferred = len(started) >= free and mark_deferred(session) > 0
    if started:
        # A parent started (or resumed) just now lets its waiting children start too.
        session.flush()
        ended = _admit_children(session, runtime, dispatch) or ended
    return Pass(dispatch, ended, deferred)


def _admit_children(session: Session, runtime: WorkerRuntime, dispatch: list[StepRef]) -> bool:
    """Children of running parents start even at the limit: their parents hold slots while
    waiting for them, so making them wait could deadlock (worker.nodes.subworkflow)."""
    ended = False
    for instance_id in pending_children_of_running_parents(session):
        ended = _admit_one(session, runtime, instance_id, dispatch) or ended
    return ended


def _admit_one(session: Session, runtime: WorkerRuntime, instance_id: uuid.UUID,
               dispatch: list[StepRef]) -> bool:
    """Start one pending instance, adding its steps to `dispatch`; True if it ended at once."""
    instance = lock_instance(session, instance_id)
    if instance is None or instance.status != InstanceStatus.PENDING.value:
        return False
    _start(session, runtime, instance)
    result = advance(session, runtime, instance)
    if not result.finished:
        # Held steps of a resumed or retried instance go out with the new ones.
        new_ids = {ref.id for ref in result.dispatch}
        dispatch.extend(result.dispatch)
        dispatch.extend(ref for ref in pending_steps_of(session, instance.id)
                        if ref.id not in new_ids)
    return result.finished


def _start(session: Session, runtime: WorkerRuntime, instance: WorkflowInstance) -> None:
    now = session.execute(select(func.clock_timestamp())).scalar_one()
    instance.status = InstanceStatus.RUNNING.value
    instance.paused_at = None
    if instance.deadline_at is None:
        # First start: the instance clock begins now, not when it was queued.
        assert instance.workflow_version_id is not None
        timeout_ms = _timeout_ms(session, runtime, instance.workflow_version_id)
        instance.started_at = now
        instance.deadline_at = now + timedelta(milliseconds=timeout_ms)


def _timeout_ms(session: Executor, runtime: WorkerRuntime, version_id: uuid.UUID) -> int:
    _, configuration = runtime.graphs.get(session, version_id)
    return execution_timeout_ms(runtime, configuration)


def execution_timeout_ms(runtime: WorkerRuntime, configuration: dict[str, Any]) -> int:
    """An instance's time limit: its version's `execution_timeout_ms`, else the default."""
    value = configuration.get("execution_timeout_ms")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return runtime.settings.workflow_execution_timeout_ms


def admit_and_dispatch(runtime: WorkerRuntime) -> int:
    """One admission pass in its own transaction, then send the started steps."""
    from worker.orchestrator import AfterCommit, apply_after_commit

    with transaction(runtime.session_factory) as session:
        admitted = admit(session, runtime)
    if admitted.dispatch:
        apply_after_commit(runtime, AfterCommit(admitted.dispatch, [], False))
    if admitted.ended or (admitted.deferred and _room_now(runtime)):
        return len(admitted.dispatch) + admit_and_dispatch(runtime)
    return len(admitted.dispatch)


def _room_now(runtime: WorkerRuntime) -> bool:
    """Whether a slot is free, read after a pass that deferred instances committed.

    An instance that ended while that pass decided may have looked for deferred
    instances before the pass's marks were visible, and so ran no pass: the deferring
    pass counts that slot here instead and goes again.
    """
    with runtime.autocommit() as connection:
        return count_running(connection) < runtime.settings.max_concurrent_workflows


def admit_if_waiting(runtime: WorkerRuntime) -> int:
    """After an instance ended: an admission pass, if a pending instance needs one.

    New instances do not count until a pass found no slot for them: each one's launch
    admits it right after its commit (`admit_new`). Running a full pass for them would
    only race their launches for the admission lock, which under load cost more than
    the steps themselves. A pass deferring instances while this reads is covered by
    that pass itself (`_room_now`).
    """
    with runtime.autocommit() as connection:
        if not any_waiting_for_a_pass(connection):
            return 0
    return admit_and_dispatch(runtime)


@dataclass(frozen=True)
class NewAdmission:
    """What `decide_new` decided for a new instance, to act on once its transaction commits."""

    room_for_all: bool
    started: StartedInstance | None = None
    result: Advance | None = None


def decide_new(executor: Executor, runtime: WorkerRuntime, instance_id: uuid.UUID,
               version_id: uuid.UUID) -> NewAdmission:
    """The decision of `admit_new`, in the caller's transaction; never commits.

    The caller may have created the instance in this same transaction (the API does: one
    commit for creating and starting it). The admission lock is held until that commit.
    """
    timeout_ms = _timeout_ms(executor, runtime, version_id)
    decision = lock_admission_and_start(executor, instance_id, timeout_ms / 1000,
                                        runtime.settings.max_concurrent_workflows)
    # Not started with room for all: a pass that held the lock before us started it (or
    # it was cancelled meanwhile). Nothing is left to do for it, and no full pass is needed.
    started = decision.started
    result = advance(executor, runtime, started.row, steps=[]) if started else None
    return NewAdmission(decision.room_for_all, started, result)


def after_new(runtime: WorkerRuntime, decision: NewAdmission) -> StartedInstance | None:
    """Once `decide_new`'s transaction committed: send the first steps, or, when there was
    no room for every pending instance, let a full pass decide. Returns what `admit_new`
    does."""
    from worker.orchestrator import AfterCommit, apply_after_commit

    if not decision.room_for_all:
        admit_and_dispatch(runtime)
        return None
    started, result = decision.started, decision.result
    if started is None or result is None:
        return None
    apply_after_commit(runtime, AfterCommit(result.dispatch, [], result.finished))
    if result.finished or result.progress != started.row.progress:
        return None
    return started


def admit_new(runtime: WorkerRuntime, instance_id: uuid.UUID,
              version_id: uuid.UUID | None) -> StartedInstance | None:
    """Admission right after an instance was created: start it at once when that is fair.

    When there are free slots for it and for every other pending instance, nobody can be
    overtaken: it starts in one short transaction (the same advisory lock, no queue to
    pick from; the others are started by their own launches or the next pass). Otherwise a
    full pass decides, by priority and age.

    Returns the instance as started when it started here and its first plan changed
    nothing else of it; None when the full pass decided (it may or may not have started),
    another pass started it first, or the plan ended it or moved its progress, so a caller
    showing its state must read it again.
    """
    if version_id is None:
        admit_and_dispatch(runtime)
        return None
    with runtime.engine.begin() as connection:
        decision = decide_new(connection, runtime, instance_id, version_id)
    return after_new(runtime, decision)
