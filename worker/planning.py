"""Turn the engine planner's decisions into step rows and instance progress; never commits.

Called with the instance row locked (FOR UPDATE), so two parents finishing together decide
a join exactly once. Only newly decided ready steps are returned for dispatch after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from engine import planner
from engine.document import WorkflowGraph
from engine.statuses import FINAL_INSTANCE_STATUSES, InstanceStatus, StepStatus
from models.instance import WorkflowExecution, WorkflowInstance
from models.instances import decided_counts, set_progress, step_states_of, steps_of
from models.steps import NewStep, StepRef, finish_step, insert_steps
from worker.notifications.notices import notify_instance_finished
from worker.runtime import WorkerRuntime

_MAX_PLAN_ROUNDS = 10_000


@dataclass(frozen=True)
class Advance:
    """What one planning pass did: steps to send after commit and whether the instance ended."""

    dispatch: list[StepRef]
    finished: bool


class PlannedInstance(Protocol):
    """What planning reads of a locked instance: an entity or a plain `InstanceRow`."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def status(self) -> str: ...
    @property
    def workflow_id(self) -> uuid.UUID | None: ...
    @property
    def workflow_version_id(self) -> uuid.UUID | None: ...
    @property
    def triggered_by(self) -> str | None: ...
    @property
    def execution_context(self) -> dict[str, Any] | None: ...
    @property
    def progress(self) -> int | None: ...


def instance_facts(instance: PlannedInstance) -> dict[str, Any]:
    """The `instance` name of the expression context."""
    return {"id": str(instance.id), "workflow_id": str(instance.workflow_id),
            "triggered_by": instance.triggered_by or ""}


def instance_input(instance: PlannedInstance) -> Any:
    context = instance.execution_context or {}
    return context.get("input", {})


def nodes_context(steps: Sequence[Any]) -> dict[str, Any]:
    """`nodes.<id>.output` / `.status` for every decided step."""
    return {step.node_id: {"output": step.output_data, "status": step.status}
            for step in steps}


def advance(session: Session, runtime: WorkerRuntime, instance: PlannedInstance,
            completed_node: str | None = None) -> Advance:
    """Plan the locked instance until nothing new is decided; finish it when the plan says so.

    `completed_node`: the node whose step just completed with its default handle, if that is
    why we plan; lets a parent of a join that still waits skip the full plan.
    """
    if instance.status in FINAL_INSTANCE_STATUSES:
        # A late step of an instance that already ended (a parallel branch failed, or it
        # timed out) is recorded, but the instance is neither replanned nor finished twice.
        return Advance(dispatch=[], finished=False)
    if instance.workflow_version_id is None:
        raise LookupError(f"instance {instance.id} has no pinned workflow version")
    graph, configuration = runtime.graphs.get(session, instance.workflow_version_id)
    if completed_node is not None:
        waiting = _join_still_waiting(session, graph, instance.id, completed_node)
        if waiting is not None:
            _record_progress(session, instance, waiting)
            return Advance(dispatch=[], finished=False)
    base = {"input": instance_input(instance), "instance": instance_facts(instance)}
    dispatch: list[StepRef] = []
    steps = step_states_of(session, instance.id)
    for _ in range(_MAX_PLAN_ROUNDS):
        states = planner_steps(steps)
        result = planner.plan(graph, states, base, runtime.node_types)
        changed = _fail_condition_errors(session, steps, result)
        dispatch.extend(_record_decisions(session, graph, instance.id, result,
                                          float(runtime.settings.default_step_timeout_seconds)))
        # The planner cascades skips and passthroughs to a fixpoint in one call, so only a
        # step failed for its edge condition needs another round.
        if not changed:
            break
        steps = step_states_of(session, instance.id)
    states.update({node_id: planner.StepState(StepStatus.PENDING) for node_id in result.ready})
    states.update({node_id: planner.StepState(StepStatus.SKIPPED) for node_id in result.skipped})
    states.update(result.passthrough_steps())
    if result.outcome != planner.OUTCOME_RUNNING:
        # Once per instance: the entity (already locked by this transaction) is worth it here.
        entity = session.get(WorkflowInstance, instance.id)
        assert entity is not None
        steps = steps_of(session, instance.id)
        entity.progress = planner.progress(graph, states)
        finalize(session, entity, graph, steps, result)
        notify_instance_finished(session, entity, configuration, steps)
        return Advance(dispatch=[], finished=True)
    _record_progress(session, instance, planner.progress(graph, states))
    if instance.status != InstanceStatus.RUNNING.value:
        return Advance(dispatch=[], finished=False)
    return Advance(dispatch=dispatch, finished=False)


def _record_progress(session: Session, instance: PlannedInstance, progress: int) -> None:
    if progress != instance.progress:
        set_progress(session, instance.id, progress)


def _join_still_waiting(session: Session, graph: WorkflowGraph, instance_id: uuid.UUID,
                        node_id: str) -> int | None:
    """The progress, when the completed node's only successor still waits on another parent.

    Then the full plan would decide nothing (its one unconditional default edge is taken and
    the join waits for every incoming edge; a completed step fails nothing; the instance is
    not done while the join is undecided), and re-reading every step after each of a fan-in's
    parents made it O(n^2). None means: plan as usual.
    """
    edges = graph.outgoing(node_id)
    if len(edges) != 1 or edges[0].condition is not None or edges[0].source_handle is not None:
        return None
    parents = {edge.source for edge in graph.incoming(edges[0].target)}
    if len(parents) < 2:
        return None
    decided, parents_decided = decided_counts(session, instance_id, sorted(parents))
    if parents_decided >= len(parents):
        return None
    return (100 * decided) // len(graph.nodes) if graph.nodes else 100


def planner_steps(steps: Sequence[Any]) -> dict[str, planner.StepState]:
    """Planner states from step rows or entities (node_id, status, selected_handle, output)."""
    return {
        step.node_id: planner.StepState(status=StepStatus(step.status),
                                        selected_handle=step.selected_handle,
                                        output=step.output_data)
        for step in steps
    }


def _fail_condition_errors(session: Session, steps: Sequence[Any],
                           result: planner.Plan) -> bool:
    """An edge condition that cannot be evaluated fails its source step (CONTRACT §3)."""
    by_node = {step.node_id: step for step in steps}
    changed = False
    for node_id, message in result.condition_errors:
        step = by_node.get(node_id)
        if step is None:
            continue
        changed = finish_step(session, step.id, expected_status=step.status,
                              new_status=StepStatus.FAILED.value, output=step.output_data,
                              handle=None, error=message) or changed
    return changed


def _record_decisions(session: Session, graph: WorkflowGraph, instance_id: uuid.UUID,
                      result: planner.Plan, default_timeout: float) -> list[StepRef]:
    """Insert one row per decided node (one statement); returns refs of new pending ones."""
    decided = [NewStep(node_id, graph.node(node_id).type, StepStatus.PENDING.value,
                       graph.node(node_id).retries) for node_id in result.ready]
    decided += [NewStep(node_id, graph.node(node_id).type, StepStatus.SKIPPED.value,
                        graph.node(node_id).retries) for node_id in result.skipped]
    decided += [NewStep(node_id, graph.node(node_id).type, StepStatus.SKIPPED.value,
                        graph.node(node_id).retries, handle=state.selected_handle,
                        passed_through=True)
                for node_id, state in result.passthrough_steps().items()]
    inserted = insert_steps(session, instance_id, decided)
    refs = []
    for node_id in result.ready:
        if node_id in inserted:
            node = graph.node(node_id)
            refs.append(StepRef(inserted[node_id], instance_id, node_id, node.type,
                                node.timeout_seconds or default_timeout))
    return refs


def finalize(session: Session, instance: WorkflowInstance, graph: WorkflowGraph,
             steps: list[WorkflowExecution], result: planner.Plan) -> None:
    """Completed or failed: outputs of completed leaves, metrics, error naming the node."""
    from sqlalchemy import func

    failed_node = result.failed_node if result.outcome == planner.OUTCOME_FAILED else None
    by_node = {step.node_id: step for step in steps}
    if failed_node is not None:
        step = by_node.get(failed_node)
        message = step.error_message if step is not None else "failed"
        instance.status = InstanceStatus.FAILED.value
        instance.error_details = f"node '{failed_node}' failed: {message}"
    else:
        instance.status = InstanceStatus.COMPLETED.value
        instance.progress = 100
        instance.output_data = planner.instance_output(graph, planner_steps(steps))
    instance.completed_at = session.execute(func.clock_timestamp().select()).scalar_one()
    instance.execution_metrics = execution_metrics(instance, steps)


def execution_metrics(instance: WorkflowInstance,
                      steps: list[WorkflowExecution]) -> dict[str, Any]:
    """Wall time, steps run, and time steps spent queued before a worker claimed them."""
    ran = [s for s in steps if s.status in ("completed", "failed") and s.started_at]
    waits = [
        max(0.0, (s.started_at - s.queued_at).total_seconds() * 1000)
        for s in ran if s.started_at is not None and s.queued_at is not None
    ]
    wall = None
    if instance.completed_at is not None and instance.started_at is not None:
        wall = int((instance.completed_at - instance.started_at).total_seconds() * 1000)
    return {
        "wall_time_ms": wall,
        "step_count": len(ran),
        "skipped_count": sum(1 for s in steps if s.status == "skipped"),
        "retry_count": sum(s.retry_count or 0 for s in steps),
        "queue_wait_ms": int(sum(waits)),
        "max_queue_wait_ms": int(max(waits)) if waits else 0,
        "step_duration_ms": sum(s.duration_ms or 0 for s in ran),
    }
