"""Turn the engine planner's decisions into step rows and instance progress; never commits.

Called with the instance row locked (FOR UPDATE), so two parents finishing together decide
a join exactly once. Only newly decided ready steps are returned for dispatch after commit.
The exception, `complete_starting_successors`, runs its own one-round-trip transaction (the
lock included) for a completion whose successors need no plan.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from engine import planner
from engine.document import WorkflowGraph
from engine.statuses import FINAL_INSTANCE_STATUSES, InstanceStatus, StepStatus
from models.db import Executor
from models.instance import WorkflowInstance
from models.instances import (
    decided_counts,
    end_instance,
    lock_instance_row,
    set_progress,
    step_records_of,
    step_states_of,
)
from models.step_recovery import skip_pending_steps
from models.steps import (
    ClaimedStep,
    NewStep,
    StepRef,
    UnclaimedRun,
    complete_step_starting,
    complete_unclaimed_step,
    finish_step,
    insert_steps,
    lock_instance_and_complete_step,
)
from worker.notifications.notices import finish_notices_wanted, notify_instance_finished
from worker.runtime import WorkerRuntime

_MAX_PLAN_ROUNDS = 10_000


@dataclass(frozen=True)
class Advance:
    """What one planning pass did: steps to send after commit and whether the instance ended."""

    dispatch: list[StepRef]
    finished: bool
    # The instance's progress after the pass, when the pass planned (None when it did not).
    progress: int | None = None


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


def complete_and_advance(executor: Executor, runtime: WorkerRuntime, claimed: ClaimedStep,
                         output: Any, handle: str | None,
                         unclaimed: UnclaimedRun | None = None) -> Advance | None:
    """Lock the instance, record a running step's completion (fenced by attempt), then plan.

    None when the attempt was superseded or the instance is gone (nothing changed). The
    lock and the completion go out in one round trip, the completion returning the
    instance's steps for the plan, except when the step feeds a join with other parents:
    then only the join's progress is counted (see `advance`). With `unclaimed`, the step
    was never claimed: it goes pending -> completed as `claimed.attempt` (a pure step).
    """
    graph = None
    if claimed.workflow_version_id is not None:
        graph, _ = runtime.graphs.get(executor, claimed.workflow_version_id)
    # Unknown graph: take the path that is right for every node.
    if handle is None and (graph is None or _join_parents(graph, claimed.node_id) is not None):
        instance = lock_instance_row(executor, claimed.instance_id)
        if instance is None or not _complete(executor, claimed, output, unclaimed):
            return None
        return advance(executor, runtime, instance, completed_node=claimed.node_id)
    # The only leaf's completion most likely ends the instance, whose end reads every
    # output: read them now, once. (Not for one of several leaves: each would read them
    # all, which grows with the square of a wide fan-out's width.)
    with_outputs = (graph is None or graph.plans_with_outputs
                    or graph.leaf_nodes() == (claimed.node_id,))
    instance, steps = lock_instance_and_complete_step(
        executor, claimed.instance_id, claimed.id, claimed.attempt, output, handle,
        with_outputs=with_outputs, unclaimed=unclaimed)
    if instance is None or steps is None:
        return None
    return advance(executor, runtime, instance, steps=steps, steps_are_records=with_outputs)


def complete_starting_successors(runtime: WorkerRuntime, claimed: ClaimedStep, output: Any,
                                 handle: str | None,
                                 unclaimed: UnclaimedRun | None = None) -> Advance | None:
    """`complete_and_advance` in one round trip, when the step's own result decides its
    successors (`engine.planner.ready_after_completion`): they start in the completion's
    statement, and nothing is read back to plan. In a transaction of its own.

    None when that does not apply, or the step was not completed (stale, or the instance
    is not running): the caller then records it the ordinary way, which tells which.
    """
    if claimed.workflow_version_id is None:
        return None
    # The cached graph says whether this applies; no connection is taken when it does not.
    graph, _ = runtime.graphs.get(runtime.engine, claimed.workflow_version_id)
    ready = planner.ready_after_completion(graph, claimed.node_id, handle, runtime.node_types)
    if ready is None:
        return None
    successors = [_new_step(graph, node_id, StepStatus.PENDING) for node_id in ready]
    with runtime.autocommit() as connection:
        started = complete_step_starting(connection, claimed.instance_id, claimed.id,
                                         claimed.attempt, output, handle, successors,
                                         len(graph.nodes), unclaimed)
    if started is None:
        return None
    if len(started.inserted) < len(ready):
        # A successor had a step already (a retried instance's): the full plan decides.
        with runtime.engine.begin() as connection:
            instance = lock_instance_row(connection, claimed.instance_id)
            if instance is None:
                return Advance(dispatch=[], finished=False)
            return advance(connection, runtime, instance)
    timeout = float(runtime.settings.default_step_timeout_seconds)
    refs = [_step_ref(graph, claimed.instance_id, claimed.workflow_version_id, node_id,
                      started.inserted[node_id], timeout) for node_id in ready]
    return Advance(dispatch=refs, finished=False, progress=started.progress)


def _complete(executor: Executor, claimed: ClaimedStep, output: Any,
              unclaimed: UnclaimedRun | None) -> bool:
    """Record a completion with the default handle; the caller holds the instance lock."""
    if unclaimed is not None:
        return complete_unclaimed_step(executor, claimed.instance_id, claimed.id,
                                       claimed.attempt, output, None, unclaimed)
    return finish_step(executor, claimed.id, expected_status=StepStatus.RUNNING.value,
                       new_status=StepStatus.COMPLETED.value, output=output, handle=None,
                       error=None, attempt=claimed.attempt)


def advance(executor: Executor, runtime: WorkerRuntime, instance: PlannedInstance,
            completed_node: str | None = None, steps: Sequence[Any] | None = None,
            steps_are_records: bool = False) -> Advance:
    """Plan the locked instance until nothing new is decided; finish it when the plan says so.

    `completed_node`: the node whose step just completed with its default handle, if that is
    why we plan; lets a parent of a join that still waits skip the full plan. `steps`: the
    instance's steps as `step_states_of` reads them, when the caller already has them (their
    outputs may be None if the graph has no edge condition: nothing here reads them then).
    `steps_are_records`: they are as `step_records_of` reads them, outputs included; a plan
    that ends the instance without writing a step then finishes it without reading them again.
    """
    if instance.status in FINAL_INSTANCE_STATUSES:
        # A late step of an instance that already ended (a parallel branch failed, or it
        # timed out) is recorded, but the instance is neither replanned nor finished twice.
        return Advance(dispatch=[], finished=False)
    if instance.workflow_version_id is None:
        raise LookupError(f"instance {instance.id} has no pinned workflow version")
    graph, configuration = runtime.graphs.get(executor, instance.workflow_version_id)
    if completed_node is not None:
        waiting = _join_still_waiting(executor, graph, instance.id, completed_node)
        if waiting is not None:
            if waiting != instance.progress:
                set_progress(executor, instance.id, waiting)
            return Advance(dispatch=[], finished=False)
    base = {"input": instance_input(instance), "instance": instance_facts(instance)}
    timeout = float(runtime.settings.default_step_timeout_seconds)
    dispatch: list[StepRef] = []
    if steps is None:
        steps, steps_are_records = step_states_of(executor, instance.id), False
    for _ in range(_MAX_PLAN_ROUNDS):
        states = planner_steps(steps)
        result = planner.plan(graph, states, base, runtime.node_types)
        changed = _fail_condition_errors(executor, steps, result)
        states.update(_decided_states(result))
        # The planner cascades skips and passthroughs to a fixpoint in one call, so only a
        # step failed for its edge condition needs another round; otherwise the progress
        # is final and goes out with the decisions, in one statement (or with the
        # instance's end, which writes it anyway).
        progress = planner.progress(graph, states)
        ends = result.outcome != planner.OUTCOME_RUNNING
        final_progress = None if changed or ends or progress == instance.progress else progress
        dispatch.extend(_record_decisions(executor, graph, instance, result, timeout,
                                          final_progress))
        if not changed:
            break
        steps, steps_are_records = step_states_of(executor, instance.id), False
    if ends:
        records = steps if steps_are_records and result.writes_no_step else None
        _finish_instance(executor, instance, graph, configuration, result, progress, records)
        return Advance(dispatch=[], finished=True)
    if instance.status != InstanceStatus.RUNNING.value:
        return Advance(dispatch=[], finished=False, progress=progress)
    return Advance(dispatch=dispatch, finished=False, progress=progress)


@dataclass(frozen=True)
class FirstPlan:
    """The first plan of an instance that has no steps yet."""

    ready: list[str]  # nodes whose steps are sent once recorded
    steps: list[NewStep]  # every decided node's new row (ready, skipped, passed through)
    progress: int | None  # the instance's progress after it, when not 0


def plan_first(runtime: WorkerRuntime, graph: WorkflowGraph,
               instance: PlannedInstance) -> FirstPlan | None:
    """What `advance` decides for a new instance as it starts, decided before anything is
    written; pure. `instance`: as it will be once started (running, no steps).

    None when that plan ends the instance at once: `advance` then finishes it, which
    needs its start written first. (No step exists yet, so no edge condition is evaluated
    and nothing fails for one: one plan is the whole of it.)
    """
    base = {"input": instance_input(instance), "instance": instance_facts(instance)}
    result = planner.plan(graph, {}, base, runtime.node_types)
    if result.outcome != planner.OUTCOME_RUNNING:
        return None
    progress = planner.progress(graph, _decided_states(result))
    return FirstPlan(list(result.ready), _decided_steps(graph, result),
                     progress if progress != instance.progress else None)


def _decided_states(result: planner.Plan) -> dict[str, planner.StepState]:
    """The states the plan's decisions give their nodes (as the rows just inserted say)."""
    states = {node_id: planner.StepState(StepStatus.PENDING) for node_id in result.ready}
    states.update({node_id: planner.StepState(StepStatus.SKIPPED)
                   for node_id in result.skipped})
    states.update(result.passthrough_steps())
    return states


@dataclass(frozen=True)
class EndedInstance:
    """An instance as it just ended: what workflow notices read of it."""

    id: uuid.UUID
    workflow_id: uuid.UUID | None
    triggered_by: str | None
    execution_context: dict[str, Any] | None
    status: str
    error_details: str | None
    completed_at: datetime


def _finish_instance(executor: Executor, instance: PlannedInstance, graph: WorkflowGraph,
                     configuration: dict[str, Any], result: planner.Plan,
                     progress: int, records: Sequence[Any] | None = None) -> None:
    """Completed or failed: outputs of completed leaves, metrics, error naming the node.

    `records`: the instance's steps as `step_records_of` reads them (in any order), when
    the caller has them as they are now.
    """
    if isinstance(executor, Session):
        executor.flush()  # the caller's own changes to this instance are written first
    failed_node = result.failed_node if result.outcome == planner.OUTCOME_FAILED else None
    if failed_node is not None:
        skip_pending_steps(executor, instance.id, f"not run: node '{failed_node}' failed")
        records = None  # pending steps were just skipped
    steps = (step_records_of(executor, instance.id) if records is None
             # step_records_of's order
             else sorted(records, key=lambda step: (step.created_at, step.node_id)))
    output = None
    error = None
    if failed_node is not None:
        failed = next((step for step in steps if step.node_id == failed_node), None)
        status = InstanceStatus.FAILED.value
        error = f"node '{failed_node}' failed: {failed.error_message if failed else 'failed'}"
    else:
        status = InstanceStatus.COMPLETED.value
        progress = 100
        output = planner.instance_output(graph, planner_steps(steps))
    completed_at = end_instance(executor, instance.id, status=status, progress=progress,
                                output=output, error=error, metrics=step_metrics(steps))
    if isinstance(executor, Session):
        # An entity the caller holds must not keep (or write back) what it had before.
        entity = executor.identity_map.get(identity_key(WorkflowInstance, instance.id))
        if entity is not None:
            executor.expire(entity)
    ended = EndedInstance(instance.id, instance.workflow_id, instance.triggered_by,
                          instance.execution_context, status, error, completed_at)
    _notify_finished(executor, ended, configuration, steps)


def _notify_finished(executor: Executor, ended: EndedInstance,
                     configuration: dict[str, Any], steps: Sequence[Any]) -> None:
    """Workflow notices (`on_completion` / `on_failure`), if the workflow has any."""
    if not finish_notices_wanted(configuration, ended.status):
        return
    if isinstance(executor, Session):
        notify_instance_finished(executor, ended, configuration, steps)
        return
    # Joins the connection's transaction: it writes now, and the caller commits.
    with Session(bind=executor) as session:
        notify_instance_finished(session, ended, configuration, steps)
        session.flush()


def _join_parents(graph: WorkflowGraph, node_id: str) -> set[str] | None:
    """The parents of the join this node feeds through its one plain edge, if it has others."""
    edges = graph.outgoing(node_id)
    if len(edges) != 1 or edges[0].condition is not None or edges[0].source_handle is not None:
        return None
    parents = {edge.source for edge in graph.incoming(edges[0].target)}
    return parents if len(parents) >= 2 else None


def _join_still_waiting(executor: Executor, graph: WorkflowGraph, instance_id: uuid.UUID,
                        node_id: str) -> int | None:
    """The progress, when the completed node's only successor still waits on another parent.

    Then the full plan would decide nothing (its one unconditional default edge is taken and
    the join waits for every incoming edge; a completed step fails nothing; the instance is
    not done while the join is undecided), and re-reading every step after each of a fan-in's
    parents made it O(n^2). None means: plan as usual.
    """
    parents = _join_parents(graph, node_id)
    if parents is None:
        return None
    decided, parents_decided = decided_counts(executor, instance_id, sorted(parents))
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


def _fail_condition_errors(executor: Executor, steps: Sequence[Any],
                           result: planner.Plan) -> bool:
    """An edge condition that cannot be evaluated fails its source step (CONTRACT §3)."""
    by_node = {step.node_id: step for step in steps}
    changed = False
    for node_id, message in result.condition_errors:
        step = by_node.get(node_id)
        if step is None:
            continue
        changed = finish_step(executor, step.id, expected_status=step.status,
                              new_status=StepStatus.FAILED.value, output=step.output_data,
                              handle=None, error=message) or changed
    return changed


def _record_decisions(executor: Executor, graph: WorkflowGraph, instance: PlannedInstance,
                      result: planner.Plan, default_timeout: float,
                      progress: int | None) -> list[StepRef]:
    """Insert one row per decided node, and the new progress (one statement).

    Returns refs of the new pending steps, to send after commit.
    """
    inserted = insert_steps(executor, instance.id, _decided_steps(graph, result), progress)
    return ready_step_refs(graph, instance, result.ready, inserted, default_timeout)


def _decided_steps(graph: WorkflowGraph, result: planner.Plan) -> list[NewStep]:
    """One new row per node the plan decided."""
    decided = [_new_step(graph, node_id, StepStatus.PENDING) for node_id in result.ready]
    decided += [_new_step(graph, node_id, StepStatus.SKIPPED) for node_id in result.skipped]
    decided += [_new_step(graph, node_id, StepStatus.SKIPPED, state.selected_handle,
                          passed_through=True)
                for node_id, state in result.passthrough_steps().items()]
    return decided


def ready_step_refs(graph: WorkflowGraph, instance: PlannedInstance, ready: Sequence[str],
                    inserted: dict[str, uuid.UUID], default_timeout: float) -> list[StepRef]:
    """Refs of the ready steps just inserted (by node id), to send after commit."""
    return [_step_ref(graph, instance.id, instance.workflow_version_id, node_id,
                      inserted[node_id], default_timeout)
            for node_id in ready if node_id in inserted]


def _new_step(graph: WorkflowGraph, node_id: str, status: StepStatus, handle: str | None = None,
              passed_through: bool = False) -> NewStep:
    node = graph.node(node_id)
    return NewStep(node_id, node.type, status.value, node.retries, handle, passed_through)


def _step_ref(graph: WorkflowGraph, instance_id: uuid.UUID, version_id: uuid.UUID | None,
              node_id: str, step_id: uuid.UUID, default_timeout: float) -> StepRef:
    """A new pending step, to send after commit."""
    node = graph.node(node_id)
    return StepRef(step_id, instance_id, node_id, node.type,
                   node.timeout_seconds or default_timeout, version_id)


def execution_metrics(instance: WorkflowInstance,
                      steps: Sequence[Any]) -> dict[str, Any]:
    """Wall time, steps run, and time steps spent queued before a worker claimed them."""
    wall = None
    if instance.completed_at is not None and instance.started_at is not None:
        wall = int((instance.completed_at - instance.started_at).total_seconds() * 1000)
    return {"wall_time_ms": wall, **step_metrics(steps)}


def step_metrics(steps: Sequence[Any]) -> dict[str, Any]:
    """`execution_metrics` but the wall time (which `end_instance` adds from the clock)."""
    ran = [s for s in steps if s.status in ("completed", "failed") and s.started_at]
    waits = [
        max(0.0, (s.started_at - s.queued_at).total_seconds() * 1000)
        for s in ran if s.started_at is not None and s.queued_at is not None
    ]
    return {
        "step_count": len(ran),
        "skipped_count": sum(1 for s in steps if s.status == "skipped"),
        "retry_count": sum(s.retry_count or 0 for s in steps),
        "queue_wait_ms": int(sum(waits)),
        "max_queue_wait_ms": int(max(waits)) if waits else 0,
        "step_duration_ms": sum(s.duration_ms or 0 for s in ran),
    }
