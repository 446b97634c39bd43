"""Hypothesis: random DAGs validate, and random runs over them always end consistently."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.document import parse_workflow
from engine.nodetypes import BUILTIN_NODE_TYPES
from engine.planner import StepState, plan, ready_after_completion
from engine.statuses import FINAL_STEP_STATUSES, StepStatus
from engine.validation import validate_workflow
from tests.engine.simulation import completed, failed, simulate

TYPES = ["noop", "condition", "transform", "approval"]
CONFIGS: dict[str, dict[str, Any]] = {
    "noop": {},
    "condition": {"expression": "input.flag"},
    "transform": {"output": {"x": "{{ input.n }}"}},
    "approval": {"approver_role": "ops"},
}
CONDITIONS = [None, "true", "false", "output.x > 0", "has(output.x) && output.x > 1", "output.nope"]


@st.composite
def dags(draw: st.DrawFn, plain: int = 0) -> dict[str, Any]:
    """Random valid documents; `plain` more edges without handle or condition, in sevenths."""
    count = draw(st.integers(min_value=1, max_value=12))
    nodes = []
    for index in range(count):
        node_type = draw(st.sampled_from(TYPES))
        data: dict[str, Any] = {"label": f"n{index}", "config": CONFIGS[node_type]}
        if draw(st.integers(0, 5)) == 0:
            data["enabled"] = False
        data["on_error"] = draw(st.sampled_from(["fail", "fail", "continue"]))
        nodes.append(
            {"id": f"n{index}", "type": node_type, "position": {"x": 0, "y": 0}, "data": data}
        )
    edges = []
    pairs = [(a, b) for a in range(count) for b in range(a + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=30) if pairs else st.just([]))
    for number, (a, b) in enumerate(chosen):
        source_type = nodes[a]["type"]
        handles = {"condition": ["true", "false", "error"], "approval": [None, "rejected", "error"]}
        handle = draw(st.sampled_from(handles.get(source_type, [None, None, "error"])))
        if draw(st.integers(0, 6)) < plain:
            handle = None
        edge: dict[str, Any] = {"id": f"e{number}", "source": f"n{a}", "target": f"n{b}"}
        if handle is not None:
            edge["sourceHandle"] = handle
        condition = draw(st.sampled_from(CONDITIONS))
        if draw(st.integers(0, 6)) < plain:
            condition = None
        edge_data: dict[str, Any] = {}
        if condition is not None:
            edge_data["condition"] = condition
        if draw(st.integers(0, 6)) == 0:
            edge_data["enabled"] = False
        if edge_data:
            edge["data"] = edge_data
        edges.append(edge)
    return {"nodes": nodes, "edges": edges}


@settings(max_examples=150, deadline=None)
@given(document=dags())
def test_random_dags_validate(document: dict[str, Any]) -> None:
    assert validate_workflow(document, BUILTIN_NODE_TYPES) == []


def _outcome_for(node_type: str, draw: Any) -> StepState:
    if draw(st.integers(0, 4)) == 0:
        return failed()
    output = {"x": draw(st.integers(-1, 3))}
    if node_type == "condition":
        return completed(output, draw(st.sampled_from(["true", "false"])))
    if node_type == "approval":
        return completed(output, draw(st.sampled_from([None, "approved", "rejected"])))
    return completed(output)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=dags(), data=st.data())
def test_random_runs_terminate_consistently(document: dict[str, Any], data: st.DataObject) -> None:
    graph = parse_workflow(document)
    base = {"input": {"flag": True, "n": 1}, "instance": {"id": "i"}}
    run = simulate(graph, lambda node_id: _outcome_for(graph.node(node_id).type, data.draw), base)

    assert len(run.ran) == len(set(run.ran)), "a node ran twice"
    ran = set(run.ran)
    for node_id, state in run.steps.items():
        if state.status == StepStatus.SKIPPED and node_id in ran:
            raise AssertionError(f"{node_id} both ran and was skipped")
    for node in graph.nodes:
        if not node.enabled:
            assert node.id not in ran, "a disabled node ran"
    if run.outcome == "completed":
        assert all(run.steps[n.id].status in FINAL_STEP_STATUSES for n in graph.nodes)
    else:
        assert run.outcome == "failed" and run.failed_node is not None
        assert run.steps[run.failed_node].status == StepStatus.FAILED

    again = plan(graph, run.steps, base)
    assert (again.ready, again.skipped, again.passthrough, again.condition_errors) == (
        (),
        (),
        (),
        (),
    )
    assert (again.outcome, again.failed_node) == (run.outcome, run.failed_node)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=dags(plain=5), data=st.data())
def test_a_completion_decided_locally_is_what_the_full_plan_decides(
        document: dict[str, Any], data: st.DataObject) -> None:
    """Completions one at a time, as workers record them, each planned to a fixpoint: wherever
    `ready_after_completion` answers, the full plan decides exactly that and nothing else."""
    graph = parse_workflow(document)
    base = {"input": {"flag": True, "n": 1}, "instance": {"id": "i"}}
    steps: dict[str, StepState] = {}
    pending: list[str] = []
    for _ in range(4 * len(graph.nodes) + 4):
        current = plan(graph, steps, base)
        for node_id, message in current.condition_errors:
            steps[node_id] = failed(message)
        steps.update({node_id: StepState(StepStatus.SKIPPED) for node_id in current.skipped})
        steps.update(current.passthrough_steps())
        steps.update({node_id: StepState(StepStatus.PENDING) for node_id in current.ready})
        pending += current.ready
        if current.condition_errors or current.skipped or current.passthrough:
            continue  # not at a fixpoint yet
        if current.outcome != "running" or not pending:
            return
        node_id = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
        outcome = _outcome_for(graph.node(node_id).type, data.draw)
        steps[node_id] = outcome
        local = ready_after_completion(graph, node_id, outcome.selected_handle)
        if outcome.status != StepStatus.COMPLETED or local is None:
            continue
        full = plan(graph, steps, base)
        assert (full.ready, full.skipped, full.passthrough, full.condition_errors,
                full.outcome) == (local, (), (), (), "running")
    raise AssertionError("the run did not end")
