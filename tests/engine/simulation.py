"""Drives the pure planner to the end the way the orchestrator does, for engine tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.document import WorkflowGraph
from engine.nodetypes import BUILTIN_NODE_TYPES
from engine.planner import Plan, StepState, plan
from engine.statuses import StepStatus

# What running a node yields: a completed/failed StepState (handle and output included).
Runner = Callable[[str], StepState]


@dataclass
class Run:
    steps: dict[str, StepState] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    outcome: str = "running"
    failed_node: str | None = None


def completed(output: Any = None, handle: str | None = None) -> StepState:
    return StepState(StepStatus.COMPLETED, handle, {} if output is None else output)


def failed(message: str = "boom") -> StepState:
    return StepState(StepStatus.FAILED, None, {"error": message})


def simulate(
    graph: WorkflowGraph,
    runner: Runner,
    base_context: Mapping[str, Any] | None = None,
    max_rounds: int | None = None,
) -> Run:
    """Plan, record decisions, run every ready node, repeat until the outcome is final.

    A condition error fails its source step, as the orchestrator does. Raises AssertionError
    when a node is decided twice or the run does not end within `max_rounds` plans.
    """
    run = Run()
    # Each round decides a node or fails a step over a condition error, each at most once.
    rounds = max_rounds if max_rounds is not None else 2 * len(graph.nodes) + 3
    for _ in range(rounds):
        current = plan(graph, run.steps, base_context, BUILTIN_NODE_TYPES)
        run.plans.append(current)
        decided = [*current.ready, *current.passthrough, *current.skipped]
        assert len(decided) == len(set(decided)), f"decided twice in one plan: {current}"
        assert not set(decided) & set(run.steps), f"a recorded node was decided again: {current}"
        for node_id in current.skipped:
            run.steps[node_id] = StepState(StepStatus.SKIPPED)
        run.steps.update(current.passthrough_steps())
        for node_id, message in current.condition_errors:
            assert run.steps[node_id].status == StepStatus.COMPLETED, current
            run.steps[node_id] = failed(message)
        if current.outcome != "running":
            run.outcome, run.failed_node = current.outcome, current.failed_node
            return run
        if not (
            current.ready or current.passthrough or current.skipped or current.condition_errors
        ):
            raise AssertionError(f"stuck: nothing to do but outcome running: {run.steps}")
        for node_id in current.ready:
            run.ran.append(node_id)
            run.steps[node_id] = runner(node_id)
    raise AssertionError("the run did not end")
