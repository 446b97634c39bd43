"""Planner tables: fan-out, fan-in, routing, skip propagation, disabled parts, error handling."""

from __future__ import annotations

from typing import Any

import pytest

from engine.document import WorkflowGraph, parse_workflow
from engine.planner import (
    PASSTHROUGH_HANDLE,
    StepState,
    instance_output,
    nodes_context,
    plan,
    progress,
    ready_after_completion,
)
from engine.statuses import StepStatus
from tests.engine.simulation import completed, failed, simulate

S = StepStatus


def build(nodes: list[Any], edges: list[Any]) -> WorkflowGraph:
    """Nodes as "id" (noop), "id:type" or dicts; edges as "a->b", "a.handle->b" or dicts."""
    raw_nodes = []
    for item in nodes:
        if isinstance(item, dict):
            raw_nodes.append(item)
            continue
        node_id, _, node_type = item.partition(":")
        raw_nodes.append({"id": node_id, "type": node_type or "noop", "data": {}})
    raw_edges = []
    for index, item in enumerate(edges):
        if isinstance(item, dict):
            raw_edges.append({"id": f"e{index}", **item})
            continue
        source, target = item.split("->")
        source, _, handle = source.partition(".")
        raw_edge: dict[str, Any] = {"id": f"{source}->{target}", "source": source, "target": target}
        if handle:
            raw_edge["sourceHandle"] = handle
        raw_edges.append(raw_edge)
    return parse_workflow({"nodes": raw_nodes, "edges": raw_edges})


def node(node_id: str, node_type: str = "noop", **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "data": data}


def all_complete(node_id: str) -> StepState:
    return completed({"from": node_id})


def test_entry_nodes_are_ready_first() -> None:
    graph = build(["a", "b", "c"], ["a->c"])
    first = plan(graph, {})
    assert first.ready == ("a", "b")
    assert first.outcome == "running"


def test_linear_chain_runs_in_order_and_outputs_the_leaf() -> None:
    graph = build(["a:trigger", "b", "c"], ["a->b", "b->c"])
    run = simulate(graph, all_complete)
    assert run.ran == ["a", "b", "c"]
    assert run.outcome == "completed"
    assert instance_output(graph, run.steps) == {"c": {"from": "c"}}
    assert progress(graph, run.steps) == 100


def test_fan_out_readies_every_branch_at_once() -> None:
    graph = build(["a", "b", "c", "d"], ["a->b", "a->c", "a->d"])
    decided = plan(graph, {"a": completed()})
    assert decided.ready == ("b", "c", "d")
    assert decided.edges == {"a->b": True, "a->c": True, "a->d": True}


def test_fan_in_waits_for_every_incoming_edge() -> None:
    graph = build(["a", "b", "c", "join"], ["a->b", "a->c", "b->join", "c->join"])
    one_done = {"a": completed(), "b": completed(), "c": StepState(S.RUNNING)}
    assert plan(graph, one_done).ready == ()
    both_done = {**one_done, "c": completed()}
    assert plan(graph, both_done).ready == ("join",)
    run = simulate(graph, all_complete)
    assert run.ran.count("join") == 1
    assert run.outcome == "completed"


CONDITION = node("check", "condition", config={"expression": "input.severity >= 7"})


@pytest.mark.parametrize(
    ("handle", "ran", "skipped"),
    [("true", "page", "log"), ("false", "log", "page")],
)
def test_condition_routes_by_selected_handle(handle: str, ran: str, skipped: str) -> None:
    graph = build(
        ["start:trigger", CONDITION, "page", "log"],
        ["start->check", "check.true->page", "check.false->log"],
    )
    steps = {"start": completed(), "check": completed({"result": handle == "true"}, handle)}
    decided = plan(graph, steps)
    assert decided.ready == (ran,)
    assert decided.skipped == (skipped,)


def test_diamond_with_an_untaken_branch_joins_once_and_completes() -> None:
    graph = build(
        ["start:trigger", CONDITION, "x", "y", "y2", "join", "after"],
        [
            "start->check",
            "check.true->x",
            "check.false->y",
            "y->y2",
            "x->join",
            "y2->join",
            "join->after",
        ],
    )

    def runner(node_id: str) -> StepState:
        return completed({"result": True}, "true") if node_id == "check" else completed()

    run = simulate(graph, runner)
    assert run.ran == ["start", "check", "x", "join", "after"]
    assert {n for n, s in run.steps.items() if s.status == S.SKIPPED} == {"y", "y2"}
    assert run.outcome == "completed"
    assert instance_output(graph, run.steps) == {"after": {}}


def test_skips_cascade_through_joins_and_chains_in_one_plan() -> None:
    graph = build(
        ["start", CONDITION, "x", "y", "j1", "j2", "tail"],
        ["start->check", "check.true->x", "check.true->y", "x->j1", "y->j1", "j1->j2", "j2->tail"],
    )
    steps = {"start": completed(), "check": completed({"result": False}, "false")}
    decided = plan(graph, steps)
    assert decided.skipped == ("x", "y", "j1", "j2", "tail")
    assert decided.ready == ()
    assert decided.outcome == "completed"


def test_join_runs_when_only_one_branch_was_taken() -> None:
    graph = build(["a", CONDITION, "x", "j"], ["a->check", "check.true->x", "x->j", "a->j"])
    steps = {"a": completed(), "check": completed({"result": False}, "false")}
    decided = plan(graph, steps)
    assert decided.skipped == ("x",)
    assert decided.ready == ("j",)


@pytest.mark.parametrize(
    ("condition", "taken"),
    [
        ("output.code == 200", True),
        ("output.code != 200", False),
        ("input.severity > 5 && nodes.a.status == 'completed'", True),
        ("nodes.a.output.code == 500", False),
        ("instance.triggered_by == 'alice'", True),
    ],
)
def test_edge_conditions_see_output_input_nodes_and_instance(condition: str, taken: bool) -> None:
    graph = build(["a", "b"], [{"source": "a", "target": "b", "data": {"condition": condition}}])
    base = {"input": {"severity": 8}, "instance": {"id": "i", "triggered_by": "alice"}}
    decided = plan(graph, {"a": completed({"code": 200})}, base)
    assert decided.edges == {"e0": taken}
    assert decided.ready == (("b",) if taken else ())
    assert decided.skipped == (() if taken else ("b",))


def test_condition_errors_leave_the_edge_undecided_and_name_the_source() -> None:
    graph = build(
        ["a", "b", "c"],
        [{"source": "a", "target": "b", "data": {"condition": "output.missing > 1"}}, "a->c"],
    )
    decided = plan(graph, {"a": completed({})})
    assert decided.ready == ("c",)
    assert decided.skipped == ()
    assert [node for node, _ in decided.condition_errors] == ["a"]
    assert "`output.missing > 1`" in decided.condition_errors[0][1]
    assert "e0" not in decided.edges
    run = simulate(graph, lambda node_id: completed({}))
    assert run.outcome == "failed" and run.failed_node == "a"


def test_a_condition_that_is_not_a_bool_is_a_condition_error() -> None:
    graph = build(["a", "b"], [{"source": "a", "target": "b", "data": {"condition": "output"}}])
    decided = plan(graph, {"a": completed({"x": 1})})
    assert "not a bool" in decided.condition_errors[0][1]


def test_disabled_node_passes_through_with_the_default_handle() -> None:
    graph = build(["a", node("off", enabled=False), "c"], ["a->off", "off->c"])
    decided = plan(graph, {"a": completed()})
    assert decided.passthrough == ("off",)
    assert decided.ready == ("c",)
    assert decided.passthrough_steps() == {"off": StepState(S.SKIPPED, "default", {})}
    run = simulate(graph, all_complete)
    assert run.ran == ["a", "c"]
    assert run.steps["off"].is_passthrough and run.steps["off"].status == S.SKIPPED


def test_disabled_entry_node_and_chains_of_disabled_nodes_pass_through() -> None:
    graph = build([node("a", enabled=False), node("b", enabled=False), "c"], ["a->b", "b->c"])
    decided = plan(graph, {})
    assert decided.passthrough == ("a", "b")
    assert decided.ready == ("c",)


def test_disabled_condition_node_takes_no_edges() -> None:
    disabled = node("check", "condition", enabled=False, config={"expression": "true"})
    graph = build(["a", disabled, "t", "f"], ["a->check", "check.true->t", "check.false->f"])
    decided = plan(graph, {"a": completed()})
    assert decided.passthrough == ("check",)
    assert decided.passthrough_steps()["check"].selected_handle == PASSTHROUGH_HANDLE
    assert decided.skipped == ("t", "f")
    assert decided.outcome == "completed"


def test_a_skipped_disabled_node_does_not_pass_through() -> None:
    graph = build(
        [CONDITION, node("off", enabled=False), "after"], ["check.true->off", "off->after"]
    )
    decided = plan(graph, {"check": completed({"result": False}, "false")})
    assert decided.skipped == ("off", "after")
    assert decided.passthrough == ()


def test_disabled_edge_does_not_exist() -> None:
    graph = build(
        ["a", "b", "c"], [{"source": "a", "target": "b", "data": {"enabled": False}}, "b->c"]
    )
    first = plan(graph, {})
    assert first.ready == ("a", "b")
    assert plan(graph, {"a": completed(), "b": completed()}).ready == ("c",)
    assert set(graph.leaf_nodes()) == {"a", "c"}


def test_failed_step_takes_only_its_error_edges_and_the_flow_goes_on() -> None:
    graph = build(["a", "b", "handler", "next"], ["a->b", "a.error->handler", "b->next"])
    decided = plan(graph, {"a": failed()})
    assert decided.ready == ("handler",)
    assert decided.skipped == ("b", "next")
    assert decided.outcome == "running"
    run = simulate(graph, lambda n: failed() if n == "a" else completed())
    assert run.outcome == "completed"
    assert run.steps["a"].status == S.FAILED
    assert instance_output(graph, run.steps) == {"handler": {}}


def test_error_edges_from_a_completed_step_are_not_taken() -> None:
    graph = build(["a", "b", "handler"], ["a->b", "a.error->handler"])
    decided = plan(graph, {"a": completed()})
    assert decided.ready == ("b",)
    assert decided.skipped == ("handler",)


def test_failure_without_error_edges_fails_the_instance_and_starts_nothing() -> None:
    graph = build(["a", "b", "c", "d"], ["a->b", "a->c", "c->d"])
    steps = {"a": completed(), "b": failed(), "c": completed()}
    decided = plan(graph, steps)
    assert decided.outcome == "failed"
    assert decided.failed_node == "b"
    assert decided.ready == ()


def test_error_edge_with_a_false_condition_does_not_rescue_the_step() -> None:
    graph = build(
        ["a", "handler"],
        [
            {
                "source": "a",
                "target": "handler",
                "sourceHandle": "error",
                "data": {"condition": "false"},
            }
        ],
    )
    decided = plan(graph, {"a": failed()})
    assert decided.outcome == "failed" and decided.failed_node == "a"


def test_on_error_continue_failed_step_does_not_fail_the_instance() -> None:
    graph = build([node("a", on_error="continue"), "b"], ["a->b"])
    decided = plan(graph, {"a": failed()})
    assert decided.outcome == "completed"
    assert decided.skipped == ("b",)


def test_on_error_continue_recorded_completed_goes_on_as_usual() -> None:
    graph = build([node("a", on_error="continue"), "b"], ["a->b"])
    decided = plan(graph, {"a": completed({"error": "boom"})})
    assert decided.ready == ("b",)


def test_approval_rejected_takes_the_rejected_edges_only() -> None:
    graph = build(["ask:approval", "ship", "close"], ["ask->ship", "ask.rejected->close"])
    rejected = plan(graph, {"ask": completed({"approved": False}, "rejected")})
    assert (rejected.ready, rejected.skipped) == (("close",), ("ship",))
    approved = plan(graph, {"ask": completed({"approved": True})})
    assert (approved.ready, approved.skipped) == (("ship",), ("close",))


@pytest.mark.parametrize("status", [S.PENDING, S.RUNNING, S.WAITING_APPROVAL])
def test_unfinished_steps_keep_the_instance_running(status: StepStatus) -> None:
    graph = build(["a", "b"], ["a->b"])
    decided = plan(graph, {"a": StepState(status)})
    assert (decided.ready, decided.skipped, decided.outcome) == ((), (), "running")


def test_replanning_a_finished_instance_changes_nothing() -> None:
    graph = build(["a", CONDITION, "x", "y"], ["a->check", "check.true->x", "check.false->y"])
    run = simulate(graph, lambda n: completed({}, "true") if n == "check" else completed())
    again = plan(graph, run.steps)
    assert (again.ready, again.skipped, again.passthrough) == ((), (), ())
    assert again.outcome == run.outcome == "completed"


def test_progress_counts_decided_nodes() -> None:
    graph = build(["a", "b", "c", "d"], ["a->b", "b->c", "c->d"])
    assert progress(graph, {}) == 0
    assert progress(graph, {"a": completed(), "b": StepState(S.RUNNING)}) == 25
    assert progress(graph, {"a": completed(), "b": failed(), "c": StepState(S.SKIPPED)}) == 75


def test_nodes_context_exposes_output_and_status() -> None:
    assert nodes_context({"a": completed({"x": 1})}) == {
        "a": {"output": {"x": 1}, "status": "completed"}
    }


def test_a_cycle_is_refused() -> None:
    graph = build(["a", "b"], ["a->b", "b->a"])
    with pytest.raises(ValueError, match="cycle"):
        plan(graph, {})


def test_a_failed_instance_decides_nothing_more() -> None:
    graph = build(["a", "b", "c", "d"], ["a->b", "b->c", "a->d"])
    decided = plan(graph, {"a": completed(), "b": failed()})
    assert (decided.ready, decided.skipped, decided.passthrough) == ((), (), ())
    assert decided.outcome == "failed"


def test_a_raising_condition_on_a_failed_steps_error_edge_counts_as_false() -> None:
    graph = build(
        ["a", "handler"],
        [
            {
                "source": "a",
                "target": "handler",
                "sourceHandle": "error",
                "data": {"condition": "output.nope"},
            }
        ],
    )
    decided = plan(graph, {"a": failed()})
    assert decided.condition_errors == ()
    assert decided.outcome == "failed" and decided.failed_node == "a"


def test_a_raising_condition_on_a_passthrough_counts_as_false() -> None:
    graph = build(
        [node("off", enabled=False), "b"],
        [{"source": "off", "target": "b", "data": {"condition": "output.x > 0"}}],
    )
    decided = plan(graph, {})
    assert decided.passthrough == ("off",)
    assert decided.skipped == ("b",)
    assert decided.condition_errors == ()


def test_conditions_into_nodes_that_have_steps_are_not_evaluated_again() -> None:
    graph = build(
        ["a", "b"], [{"source": "a", "target": "b", "data": {"condition": "output.gone"}}]
    )
    decided = plan(graph, {"a": completed({}), "b": StepState(S.SKIPPED)})
    assert decided.condition_errors == ()
    assert decided.edges == {}


def test_conditions_see_skips_decided_earlier_in_the_same_plan() -> None:
    graph = build(
        [CONDITION, "y", "p", "q"],
        [
            {
                "source": "check",
                "target": "y",
                "sourceHandle": "false",
                "data": {"condition": "true"},
            },
            {"source": "p", "target": "q", "data": {"condition": "nodes.y.status == 'skipped'"}},
        ],
    )
    steps = {"check": completed({"result": True}, "true"), "p": completed()}
    decided = plan(graph, steps)
    assert decided.skipped == ("y",)
    assert decided.ready == ("q",)


@pytest.mark.parametrize(("nodes", "edges", "handle", "expected"), [
    (["a", "b", "c"], ["a->b", "b->c"], None, ("b",)),
    (["a", "b", "c"], ["a->c", "a->b"], None, ("b", "c")),  # a fan-out, in document order
    (["a", "b", "c"], ["a->b", "b->c"], "default", ("b",)),
    (["a"], [], None, None),  # nothing follows: the instance may end
    (["a", "b", "c"], ["a->c", "b->c"], None, None),  # a join
    (["a", "b", "c"], ["a->b", "a.error->c"], None, None),  # c is skipped
    ([{"id": "a", "type": "noop", "data": {}},
      {"id": "b", "type": "noop", "data": {"enabled": False}}], ["a->b"], None, None),
    ([CONDITION, "y"], ["check.true->y"], "true", ("y",)),
    ([CONDITION, "y", "n"], ["check.true->y", "check.false->n"], "true", None),
    (["a", "b"], [{"source": "a", "target": "b", "data": {"condition": "true"}}], None, None),
    (["a:approval", "b"], ["a->b"], "rejected", None),
])
def test_ready_after_completion_only_when_the_edges_alone_decide(
        nodes: list[Any], edges: list[Any], handle: str | None,
        expected: tuple[str, ...] | None) -> None:
    graph = build(nodes, edges)
    source = graph.nodes[0].id
    assert ready_after_completion(graph, source, handle) == expected
    if expected is not None:
        others = {node.id: StepState(S.PENDING) for node in graph.nodes[1:]
                  if node.id not in expected}
        full = plan(graph, {source: completed({}, handle), **others})
        assert full.ready == expected and not full.skipped and not full.passthrough
