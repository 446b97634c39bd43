"""The `subworkflow` node: start a child instance and wait for it without a worker slot.

Semantics (CONTRACT §2):
- Config (rendered): `workflow_id`, `input` (default: the parent instance's input). The child
  is created with `create_instance` (idempotency key `subworkflow:<step id>`, so a re-delivered
  step never starts a second child), `triggered_by` = "subworkflow", `trigger_source` = the
  parent instance id, `parent_execution_id` = the step, and the parent's priority.
- The step then waits in `waiting_approval` (the contract's only held step status), holding
  no worker slot. The reconciler job `resume_subworkflow_steps` finishes it once the child
  ends: completed -> output = the child's `output_data`; failed or cancelled -> the step fails
  with the child's error (`error` edges apply; with `on_error: continue` and no error edge
  it completes with `{"error": message}`). Node `retries` do not re-run a finished child;
  retrying the failed parent instance runs the step again, which starts a fresh child.
- Cancelling (or otherwise ending) the parent cancels its unfinished children: the job
  `cancel_orphaned_children`, and recursively their own children on the next passes.
- Pausing the parent pauses its running children (recursively, in the same transaction);
  resuming it resumes its paused children (worker.control).
- Admission: children count as running instances like any other, but a pending child whose
  parent is running is admitted even when MAX_CONCURRENT_WORKFLOWS is reached
  Otherwise parents holding every slot while waiting for their children
  would deadlock (worker.admission admits them first, beyond the limit). So the running
  count can exceed the limit by the number of children of running parents; top-level
  instances still wait for a slot below the limit.
- A workflow may not nest deeper than models.subworkflows.MAX_DEPTH levels (a workflow that
  calls itself fails instead of running forever).
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from engine.statuses import InstanceStatus
from models.db import transaction
from models.instance import WorkflowExecution, WorkflowInstance
from models.subworkflows import (
    MAX_DEPTH,
    EndedChild,
    children_of_ended_parents,
    children_of_step,
    ended_children_of_waiting_steps,
    nesting_depth,
)
from models.workflow import Workflow
from worker.errors import PermanentNodeError
from worker.launch import InactiveWorkflowError, create_instance
from worker.nodes import with_run
from worker.results import Suspend
from worker.runtime import WorkerRuntime

log = structlog.get_logger("flowyard.subworkflow")


def _workflow_id(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PermanentNodeError(f"subworkflow workflow_id {value!r} is not a UUID") from None


def run(config: dict[str, Any], context: Any) -> Suspend:
    workflow_id = _workflow_id(config.get("workflow_id"))
    child_input = config.get("input")
    if child_input is None:
        child_input = context.expressions.get("input") or {}
    with transaction(context.session_factory) as session:
        parent = session.get(WorkflowInstance, context.instance_id)
        workflow = session.get(Workflow, workflow_id)
        if parent is None:
            raise PermanentNodeError("the parent instance no longer exists")
        if workflow is None:
            raise PermanentNodeError(f"subworkflow {workflow_id} does not exist")
        if nesting_depth(session, parent.id) >= MAX_DEPTH:
            raise PermanentNodeError(f"subworkflows nest deeper than {MAX_DEPTH} levels")
        try:
            child, _ = create_instance(
                session, workflow, child_input, parent.priority or "normal",
                idempotency_key=_child_key(session, context.step_id),
                triggered_by="subworkflow", trigger_source=str(parent.id),
                parent_execution_id=context.step_id)
        except InactiveWorkflowError as error:
            raise PermanentNodeError(str(error)) from None
        child_id = child.id
    return Suspend(output={"child_instance_id": str(child_id)})


def _child_key(session: Any, step_id: uuid.UUID) -> str:
    """The idempotency key of the child this run of the step should have.

    A re-delivered step gets the key of its existing child (so no second child starts),
    unless every child so far failed or was cancelled: then the step is running again
    because the parent was retried, and it starts a fresh child.
    """
    children = children_of_step(session, step_id)
    failed = (InstanceStatus.FAILED.value, InstanceStatus.CANCELLED.value)
    generation = len(children) if children and children[-1][1] in failed else \
        max(len(children) - 1, 0)
    return f"subworkflow:{step_id}" + (f":{generation}" if generation else "")


def resume_subworkflow_steps(runtime: WorkerRuntime) -> int:
    """Reconciler job: finish every waiting subworkflow step whose child instance ended."""
    from worker.orchestrator import apply_after_commit, finish_waiting_step

    with runtime.session_factory() as session:
        ended = ended_children_of_waiting_steps(session)
    resumed = 0
    for child in ended:
        with transaction(runtime.session_factory) as session:
            if child.status == InstanceStatus.COMPLETED.value:
                after = finish_waiting_step(session, runtime, child.step_id,
                                            child.output or {})
            else:
                after = _fail_step(session, runtime, child)
        if after is not None:
            apply_after_commit(runtime, after)
            resumed += 1
    return resumed


def _fail_step(session: Any, runtime: WorkerRuntime, child: EndedChild) -> Any:
    """Fail the step for its child; `on_error: continue` completes it with `{"error"}`."""
    from worker.orchestrator import finish_waiting_step

    error = (f"subworkflow instance {child.child_id} {child.status}: "
             f"{child.error or 'no details'}")
    if _continues_on_error(session, runtime, child.step_id):
        return finish_waiting_step(session, runtime, child.step_id, {"error": error})
    return finish_waiting_step(session, runtime, child.step_id,
                               {"child_instance_id": str(child.child_id)},
                               failed_error=error)


def _continues_on_error(session: Any, runtime: WorkerRuntime, step_id: uuid.UUID) -> bool:
    step = session.get(WorkflowExecution, step_id)
    instance = session.get(WorkflowInstance, step.instance_id) if step is not None else None
    if instance is None or instance.workflow_version_id is None:
        return False
    graph, _ = runtime.graphs.get(session, instance.workflow_version_id)
    node = graph.node_by_id.get(step.node_id)
    has_error_edges = any(edge.source_handle == "error" for edge in graph.outgoing(step.node_id))
    return node is not None and node.on_error == "continue" and not has_error_edges


def cancel_orphaned_children(runtime: WorkerRuntime) -> int:
    """Reconciler job: cancel unfinished children of parents that ended."""
    from worker.control import ControlError, after_control, cancel

    cancelled = 0
    with runtime.session_factory() as session:
        orphans = children_of_ended_parents(session)
    for child_id in orphans:
        try:
            with transaction(runtime.session_factory) as session:
                result = cancel(session, child_id)
        except ControlError:
            continue  # it ended meanwhile
        after_control(runtime, result)
        log.info("subworkflow.child_cancelled", child_id=str(child_id))
        cancelled += 1
    return cancelled


NODE_TYPE = with_run("subworkflow", run)
