"""Start an instance of a workflow that ran before in one transaction sent whole.

`POST /execute` without an idempotency key comes here first. The workflow's pinned version
(as this process last read it) and that version's graph are cached, and a new instance has
no steps, so its start and first plan are decided before anything is written, and
`models.launches.insert_and_start` writes all of it, the admission decision included, in
one round trip; the write checks the version is still the one pinned. The general path
(`worker.launch.create_instance`, then `worker.admission.decide_new`) takes five and holds
the admission lock over three; it remains for keyed launches, a workflow's first launch,
one that cannot start (it says why), and a first plan that ends the instance at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from engine.statuses import InstanceStatus
from models.instance import WorkflowInstance
from models.instances import InstanceRow
from models.launches import insert_and_start, pinned_version_of
from models.steps import StepRef
from worker.admission import admit_and_dispatch, execution_timeout_ms
from worker.launch import launch_values
from worker.planning import plan_first, ready_step_refs
from worker.runtime import WorkerRuntime


@dataclass(frozen=True)
class DirectLaunch:
    """A committed new instance, and what to do now (`after_direct_launch`)."""

    instance: WorkflowInstance  # as committed; not attached to any session
    started: bool  # False: no room for it and every other pending instance
    dispatch: list[StepRef]  # its first steps, when it started


def launch_directly(runtime: WorkerRuntime, connection: Connection, workflow_id: uuid.UUID,
                    input: Any, priority: str, triggered_by: str | None,
                    trigger_source: str | None, *, instance_id: uuid.UUID,
                    audit_entry: Mapping[str, Any] | None = None) -> DirectLaunch | None:
    """New instance `instance_id` of the workflow's pinned version, started when there is
    room, with its first steps recorded; committed, with `audit_entry` if given (the
    calling request's audit row, `models.launches.insert_and_start`). One round trip on
    `connection`, an autocommit one (`models.db.autocommit`), for the transaction; one
    more before it to read the pinned version when this process has not read it yet
    (`WorkerRuntime.pinned_versions`).

    None, with nothing written, when this path does not apply: the workflow is unknown,
    inactive or never ran, its pinned version changed since this process read it, or its
    first plan would end it. The caller then takes the general path, which says why or
    pins a version.
    """
    values = launch_values(input, priority, triggered_by, trigger_source)
    cached = runtime.pinned_versions.get(workflow_id)
    version_id = cached if cached is not None else pinned_version_of(connection, workflow_id)
    if version_id is None:
        return None
    graph, configuration = runtime.graphs.get(connection, version_id)
    if cached is None:  # remembered once its graph is: a cached version's graph is too
        runtime.pinned_versions.remember(workflow_id, version_id)
    # As the instance will be once started: the plan is made for that.
    row = InstanceRow(instance_id, InstanceStatus.RUNNING.value, workflow_id, version_id,
                      triggered_by, values["execution_context"], 0)
    plan = plan_first(runtime, graph, row)
    if plan is None:
        return None
    inserted = insert_and_start(
        connection, instance_id=row.id, workflow_id=workflow_id, version_id=version_id,
        values=values, timeout_seconds=execution_timeout_ms(runtime, configuration) / 1000,
        max_running=runtime.settings.max_concurrent_workflows, first_steps=plan.steps,
        progress=plan.progress, audit_entry=audit_entry)
    if inserted is None:
        # Saved (a new version pinned), deactivated or deleted since read: read it again.
        runtime.pinned_versions.forget(workflow_id)
        return None
    instance, started = inserted.instance, inserted.started
    if started is None:
        return DirectLaunch(instance, started=False, dispatch=[])
    instance.status = started.row.status
    instance.progress = started.row.progress
    instance.started_at, instance.deadline_at = started.started_at, started.deadline_at
    instance.updated_at = started.updated_at
    timeout = float(runtime.settings.default_step_timeout_seconds)
    return DirectLaunch(instance, started=True, dispatch=ready_step_refs(
        graph, row, plan.ready, inserted.step_ids, timeout))


def after_direct_launch(runtime: WorkerRuntime, launch: DirectLaunch) -> None:
    """Send the first steps of an instance that started; for one that did not, a full
    admission pass decides, by priority and age."""
    from worker.orchestrator import AfterCommit, apply_after_commit

    if launch.started:
        apply_after_commit(runtime, AfterCommit(launch.dispatch, [], False))
    else:
        admit_and_dispatch(runtime)
