"""End-to-end flows on real workers: linear, branching, diamond, fan-out/fan-in, outputs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status

pytestmark = pytest.mark.slow


def test_linear_flow_completes_with_outputs_and_metrics(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("shape", "transform", {"output": {"double": "{{ input.n * 2 }}",
                                               "text": "n={{ input.n }}"}}),
        node("end", "transform", {"output": {"from_shape": "{{ nodes.shape.output.double }}"}}),
    ], [edge("start", "shape"), edge("shape", "end")])
    instance_id = start(runtime, wf, {"n": 21})
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    assert row.output_data == {"end": {"from_shape": 42}}
    assert row.progress == 100
    recorded = steps(runtime, instance_id)
    assert {k: v.status for k, v in recorded.items()} == {
        "start": "completed", "shape": "completed", "end": "completed"}
    assert recorded["start"].output_data == {"n": 21}
    assert recorded["shape"].output_data == {"double": 42, "text": "n=21"}
    assert all(step.attempt == 1 and step.duration_ms is not None for step in recorded.values())
    metrics = row.execution_metrics or {}
    assert metrics["step_count"] == 3
    assert metrics["wall_time_ms"] >= 0 and "queue_wait_ms" in metrics
    assert row.current_step == "end"


@pytest.mark.parametrize(("severity", "taken", "untaken"), [(9, "page", "log"),
                                                            (2, "log", "page")])
def test_condition_routes_to_one_branch(runtime: Any, cluster: Any, severity: int,
                                        taken: str, untaken: str) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("check", "condition", {"expression": "input.severity >= 7"}),
        node("page", "transform", {"output": {"paged": True}}),
        node("log", "transform", {"output": {"logged": True}}),
    ], [edge("start", "check"), edge("check", "page", "true"), edge("check", "log", "false")])
    instance_id = start(runtime, wf, {"severity": severity})
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert recorded["check"].output_data == {"result": severity >= 7}
    assert recorded[taken].status == "completed"
    assert recorded[untaken].status == "skipped"
    assert set(row.output_data or {}) == {taken}


def test_diamond_with_untaken_branch_joins_once(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("left", "noop"),
        node("right", "noop"),
        node("join", "transform", {"output": {"left": "{{ nodes.left.status }}",
                                              "right": "{{ nodes.right.status }}"}}),
    ], [edge("start", "left"), edge("start", "right", condition="input.go_right"),
        edge("left", "join"), edge("right", "join")])
    instance_id = start(runtime, wf, {"go_right": False})
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert recorded["right"].status == "skipped"
    assert recorded["join"].status == "completed"
    assert recorded["join"].attempt == 1
    assert row.output_data == {"join": {"left": "completed", "right": "skipped"}}


def test_fan_out_200_and_fan_in(runtime: Any, cluster: Any) -> None:
    branches = [f"b{i}" for i in range(200)]
    nodes = [node("start", "trigger")] + [
        node(b, "transform", {"output": {"i": i}}) for i, b in enumerate(branches)
    ] + [node("join", "transform", {"output": {"sum": "{{ " + " + ".join(
        f"nodes.b{i}.output.i" for i in range(0, 200, 50)) + " }}"}})]
    edges = [edge("start", b) for b in branches] + [edge(b, "join") for b in branches]
    wf = make_workflow(runtime, nodes, edges)
    instance_id = start(runtime, wf, {})
    row = wait_status(runtime, instance_id, timeout=240)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert len(recorded) == 202
    assert all(step.status == "completed" for step in recorded.values())
    assert recorded["join"].attempt == 1
    assert row.output_data == {"join": {"sum": 0 + 50 + 100 + 150}}
    assert (row.execution_metrics or {})["step_count"] == 202


def test_disabled_node_passes_through_and_disabled_edge_does_not_exist(
        runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("off", "transform", {"output": {"never": True}}, enabled=False),
        node("after", "transform", {"output": {"ran": True}}),
        node("cut", "noop"),
    ], [edge("start", "off"), edge("off", "after"),
        {"id": "gone", "source": "start", "target": "cut", "data": {"enabled": False}}])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert recorded["off"].status == "skipped" and recorded["off"].attempt == 0
    assert recorded["after"].status == "completed"
    # `cut` has no enabled incoming edge: it is an entry node and runs on its own.
    assert recorded["cut"].status == "completed"


def test_running_instance_keeps_its_definition_after_an_edit(runtime: Any,
                                                             cluster: Any) -> None:
    from api.workflow_store import update_workflow
    from models.db import transaction
    from models.workflow import Workflow
    from tests.processes import wait_until

    def document(label: str) -> dict[str, Any]:
        return {"nodes": [node("start", "trigger"), node("wait", "delay", {"seconds": 1}),
                          node("end", "transform", {"output": {"version": label}})],
                "edges": [edge("start", "wait"), edge("wait", "end")]}

    wf = make_workflow(runtime, document("v1")["nodes"], document("v1")["edges"])
    instance_id = start(runtime, wf)
    wait_until(lambda: "wait" in steps(runtime, instance_id), 20, message="delay decided")
    with transaction(runtime.session_factory) as session:
        workflow = session.get(Workflow, wf, with_for_update=True)
        update_workflow(session, workflow, {"workflow_data": document("v2")}, "tester")
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    assert row.output_data == {"end": {"version": "v1"}}
    second = start(runtime, wf)
    assert wait_status(runtime, second).output_data == {"end": {"version": "v2"}}
