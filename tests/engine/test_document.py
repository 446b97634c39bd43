"""The document model: common options, defaults, graph queries, tolerant parsing."""

from __future__ import annotations

from typing import Any

import pytest

from engine.document import Edge, Node, parse_workflow


def doc(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"nodes": nodes, "edges": edges or []}


def test_node_options_default_and_resolve_against_configuration() -> None:
    graph = parse_workflow(
        doc(
            [
                {"id": "a", "type": "noop", "position": {"x": 1, "y": 2}, "data": {"label": "A"}},
                {
                    "id": "b",
                    "type": "http",
                    "data": {
                        "config": {"url": "https://x.example"},
                        "enabled": False,
                        "retries": 5,
                        "retry_backoff_seconds": 3,
                        "timeout_seconds": 30,
                        "on_error": "continue",
                    },
                },
            ]
        ),
        configuration={"max_retries": 2, "retry_backoff_seconds": 4},
    )
    assert graph.nodes[0] == Node(
        id="a",
        type="noop",
        label="A",
        position={"x": 1, "y": 2},
        config={},
        enabled=True,
        retries=2,
        retry_backoff_seconds=4.0,
        timeout_seconds=None,
        on_error="fail",
    )
    b = graph.node("b")
    assert (b.enabled, b.retries, b.retry_backoff_seconds, b.timeout_seconds, b.on_error) == (
        False,
        5,
        3.0,
        30.0,
        "continue",
    )
    assert b.config == {"url": "https://x.example"}


def test_defaults_without_configuration() -> None:
    node = parse_workflow(doc([{"id": "a", "type": "noop"}])).node("a")
    assert (node.retries, node.retry_backoff_seconds, node.on_error, node.enabled) == (
        0,
        1.0,
        "fail",
        True,
    )


def test_edges_parse_handles_type_condition_and_enabled() -> None:
    graph = parse_workflow(
        doc(
            [{"id": "a", "type": "condition"}, {"id": "b", "type": "noop"}],
            [
                {"id": "e1", "source": "a", "target": "b", "sourceHandle": "true"},
                {
                    "id": "e2",
                    "source": "a",
                    "target": "b",
                    "sourceHandle": "false",
                    "targetHandle": "in",
                    "type": "default",
                    "data": {"condition": "input.x > 1", "enabled": False},
                },
            ],
        )
    )
    assert graph.edges == (
        Edge(id="e1", source="a", target="b", source_handle="true"),
        Edge(
            id="e2",
            source="a",
            target="b",
            source_handle="false",
            target_handle="in",
            type="default",
            condition="input.x > 1",
            enabled=False,
        ),
    )
    assert graph.edges[0].type == "smoothstep"
    assert graph.outgoing("a") == (graph.edges[0],)
    assert graph.incoming("b") == (graph.edges[0],)


def test_graph_queries_use_enabled_edges_only() -> None:
    nodes = [{"id": n, "type": "noop"} for n in "abcde"]
    edges = [
        {"id": "ab", "source": "a", "target": "b"},
        {"id": "bc", "source": "b", "target": "c"},
        {"id": "ad", "source": "a", "target": "d"},
        {"id": "de", "source": "d", "target": "e", "data": {"enabled": False}},
    ]
    graph = parse_workflow(doc(nodes, edges))
    assert graph.entry_nodes() == ("a", "e")
    assert graph.leaf_nodes() == ("c", "d", "e")
    assert graph.descendants(["a"]) == frozenset({"b", "c", "d"})
    assert graph.descendants(["b", "d"]) == frozenset({"c"})
    order = graph.topological_order()
    assert order == ("a", "b", "c", "d", "e")
    assert graph.cycles() == []


def test_a_graph_plans_with_outputs_only_if_an_enabled_edge_has_a_condition() -> None:
    nodes = [{"id": n, "type": "noop"} for n in "abc"]
    plain = [{"id": "ab", "source": "a", "target": "b"},
             {"id": "bc", "source": "b", "target": "c", "data": {"condition": "  "}}]
    disabled = [*plain[:1], {"id": "bc", "source": "b", "target": "c",
                             "data": {"condition": "output.ok", "enabled": False}}]
    conditional = [*plain[:1], {"id": "bc", "source": "b", "target": "c",
                                "data": {"condition": "output.ok"}}]
    assert not parse_workflow(doc(nodes, plain)).plans_with_outputs
    assert not parse_workflow(doc(nodes, disabled)).plans_with_outputs
    assert parse_workflow(doc(nodes, conditional)).plans_with_outputs


def test_topological_order_puts_every_edge_forward() -> None:
    nodes = [{"id": n, "type": "noop"} for n in ["z", "y", "x", "w"]]
    edges = [{"id": f"{s}{t}", "source": s, "target": t} for s, t in ["wz", "xy", "wx", "yz"]]
    order = parse_workflow(doc(nodes, edges)).topological_order()
    position = {node: index for index, node in enumerate(order)}
    assert all(position[e["source"]] < position[e["target"]] for e in edges)


def test_cycles_are_named_and_refused_by_topological_order() -> None:
    nodes = [{"id": n, "type": "noop"} for n in "abcd"]
    edges = [
        {"id": "1", "source": "a", "target": "b"},
        {"id": "2", "source": "b", "target": "c"},
        {"id": "3", "source": "c", "target": "a"},
        {"id": "4", "source": "d", "target": "d"},
    ]
    graph = parse_workflow(doc(nodes, edges))
    assert graph.cycles() == [["a", "b", "c"], ["d"]]
    with pytest.raises(ValueError, match="cycle"):
        graph.topological_order()


@pytest.mark.parametrize(
    "junk",
    [
        None,
        [],
        "x",
        {"nodes": "x", "edges": 5},
        {"nodes": [None, 3, {"data": "x"}], "edges": [None, {"data": []}]},
        {"nodes": [{"id": "a", "data": {"retries": "x", "timeout_seconds": -1, "on_error": 3}}]},
    ],
)
def test_parsing_junk_never_crashes(junk: Any) -> None:
    graph = parse_workflow(junk)
    for node in graph.nodes:
        assert node.retries == 0 and node.timeout_seconds is None and node.on_error == "fail"


def test_edges_to_unknown_nodes_are_ignored_by_flow() -> None:
    graph = parse_workflow(
        doc([{"id": "a", "type": "noop"}], [{"id": "e", "source": "a", "target": "ghost"}])
    )
    assert graph.outgoing("a") == ()
    assert graph.leaf_nodes() == ("a",)


def test_topological_order_of_a_wide_fan_keeps_document_order_and_is_computed_once() -> None:
    branches = [f"b{i}" for i in range(300, 0, -1)]  # document order is not name order
    nodes = [{"id": n, "type": "noop"} for n in ["start", *branches, "join"]]
    edges = [{"id": f"o{b}", "source": "start", "target": b} for b in branches]
    edges += [{"id": f"i{b}", "source": b, "target": "join"} for b in branches]
    graph = parse_workflow(doc(nodes, edges))
    order = graph.topological_order()
    assert order == ("start", *branches, "join")
    assert graph.topological_order() is order


def test_a_cyclic_graph_refuses_topological_order_every_time() -> None:
    nodes = [{"id": n, "type": "noop"} for n in "ab"]
    edges = [{"id": "1", "source": "a", "target": "b"}, {"id": "2", "source": "b", "target": "a"}]
    graph = parse_workflow(doc(nodes, edges))
    for _ in range(2):
        with pytest.raises(ValueError, match="cycle"):
            graph.topological_order()
