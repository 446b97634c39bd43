"""Validation: a table of bad documents and the exact problems each one reports."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.nodetypes import BUILTIN_NODE_TYPES
from engine.validation import Limits, Problem, validate_workflow


def node(node_id: str, node_type: str = "noop", **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "data": data}


def edge(edge_id: str, source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"id": edge_id, "source": source, "target": target, **extra}


CONTRACT_EXAMPLE: dict[str, Any] = {
    "nodes": [
        node("start", "trigger", label="Start"),
        node(
            "check",
            "condition",
            label="Critical?",
            config={"expression": "input.severity >= 7"},
        ),
        node(
            "page",
            "notification",
            label="Page on-call",
            config={
                "channel": "slack",
                "recipients": ["https://hooks.example.com/T000/B000"],
                "message": "Critical finding {{ input.title }}",
            },
        ),
    ],
    "edges": [
        edge("e1", "start", "check", type="smoothstep"),
        edge("e2", "check", "page", sourceHandle="true"),
    ],
}


def keys(problems: list[Problem]) -> list[tuple[str, str | None, str | None, str | None]]:
    return [(p.code, p.node_id, p.edge_id, p.field) for p in problems]


def check(document: Any, **kwargs: Any) -> list[Problem]:
    return validate_workflow(document, BUILTIN_NODE_TYPES, Limits(), **kwargs)


def test_contract_example_is_valid() -> None:
    assert check(CONTRACT_EXAMPLE) == []


def test_every_builtin_type_with_a_full_config_is_valid() -> None:
    configs = {
        "trigger": {},
        "noop": {},
        "transform": {"output": {"total": "{{ input.a + input.b }}", "list": [1, None]}},
        "condition": {"expression": "input.ok"},
        "delay": {"seconds": 2.5},
        "http": {
            "method": "POST",
            "url": "https://api.example.com/items",
            "headers": {"Authorization": {"$secret": "API_TOKEN"}},
            "query": {"q": "{{ input.q }}"},
            "body": {"a": 1},
            "timeout_seconds": 10,
            "expect_status": [200, 201],
        },
        "approval": {
            "approver_role": "security",
            "message": "Ship it?",
            "expires_in_seconds": 3600,
            "data": {"x": 1},
        },
        "notification": {
            "channel": "webhook",
            "recipients": ["https://hooks.example.com/x"],
            "subject": "s",
            "message": "m {{ nodes.start.output }}",
            "secret": {"$secret": "HOOK_KEY"},
            "required": False,
        },
        "integration": {
            "connector": "jira",
            "action": "create_issue",
            "parameters": {"project": "SEC"},
            "credential": {"$secret": "JIRA"},
        },
        "subworkflow": {"workflow_id": "7f0c3b9e-4e63-4f8e-9a52-2f3c61a0a1b2", "input": {}},
    }
    assert set(configs) == set(BUILTIN_NODE_TYPES)
    nodes = [node("start", "trigger")]
    edges = []
    for name, config in configs.items():
        if name == "trigger":
            continue
        nodes.append(node(name, name, config=config))
        handle = {"condition": {"sourceHandle": "true"}}.get(name, {})
        edges.append(edge(f"to-{name}", "start", name))
        edges.append(edge(f"from-{name}", name, "sink", **handle))
    nodes.append(node("sink"))
    assert check({"nodes": nodes, "edges": edges}) == []


def with_changes(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    change(document)
    return document


def set_in(path: list[Any], value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def append(collection: str, item: Any) -> Any:
    return lambda document: document[collection].append(item)


BAD_DOCUMENTS: list[tuple[str, Any, list[tuple[str, str | None, str | None, str | None]]]] = [
    (
        "nodes not a list",
        set_in(["nodes"], {"a": 1}),
        [
            ("invalid_document", None, None, "nodes"),
            ("unknown_node", None, "e1", "source"),
            ("unknown_node", None, "e1", "target"),
            ("unknown_node", None, "e2", "source"),
            ("unknown_node", None, "e2", "target"),
            ("no_entry_node", None, None, None),
        ],
    ),
    (
        "edges not a list",
        set_in(["edges"], "x"),
        [("invalid_document", None, None, "edges")],
    ),
    ("node not an object", append("nodes", 7), [("invalid_node", None, None, "nodes[3]")]),
    ("node without id", append("nodes", {"type": "noop"}), [("missing_field", None, None, "id")]),
    (
        "node without type",
        append("nodes", {"id": "x"}),
        [("missing_field", "x", None, "type")],
    ),
    (
        "duplicate node id",
        append("nodes", node("page")),
        [("duplicate_node_id", "page", None, "id")],
    ),
    (
        "duplicate edge id",
        append("edges", edge("e1", "start", "page")),
        [("duplicate_edge_id", None, "e1", "id")],
    ),
    (
        "edge to a missing node",
        append("edges", edge("e3", "page", "ghost")),
        [("unknown_node", None, "e3", "target")],
    ),
    (
        "edge from a missing node",
        append("edges", edge("e3", "ghost", "page")),
        [("unknown_node", None, "e3", "source")],
    ),
    (
        "edge without source",
        append("edges", {"id": "e3", "target": "page"}),
        [("missing_field", None, "e3", "source")],
    ),
    ("edge without id", append("edges", {"source": "a"}), [("missing_field", None, None, "id")]),
    ("edge not an object", append("edges", []), [("invalid_edge", None, None, "edges[2]")]),
    (
        "cycle",
        append("edges", edge("back", "page", "check")),
        [("cycle", "check", None, None)],
    ),
    (
        "self loop",
        append("edges", edge("loop", "page", "page")),
        [("cycle", "page", None, None)],
    ),
    (
        "no entry node",
        lambda d: d["edges"].append(edge("back", "page", "start")),
        [("cycle", "start", None, None), ("no_entry_node", None, None, None)],
    ),
    (
        "unregistered type",
        set_in(["nodes", 2, "type"], "fax"),
        [("unknown_node_type", "page", None, "type")],
    ),
    (
        "config of the wrong kind",
        set_in(["nodes", 2, "data", "config", "channel"], "fax"),
        [("invalid_config", "page", None, "config.channel")],
    ),
    (
        "config with an unknown key",
        set_in(["nodes", 1, "data", "config", "extra"], 1),
        [("invalid_config", "check", None, "config.extra")],
    ),
    (
        "config missing a required key",
        set_in(["nodes", 1, "data", "config"], {}),
        [("invalid_config", "check", None, "config.expression")],
    ),
    (
        "config not an object",
        set_in(["nodes", 0, "data", "config"], [1]),
        [("invalid_config", "start", None, "config")],
    ),
    (
        "bad condition expression on a node",
        set_in(["nodes", 1, "data", "config", "expression"], "input.severity >="),
        [("invalid_expression", "check", None, "config.expression")],
    ),
    (
        "bad edge condition",
        set_in(["edges", 0, "data"], {"condition": "input.x ==="}),
        [("invalid_expression", None, "e1", "data.condition")],
    ),
    (
        "edge condition not a string",
        set_in(["edges", 0, "data"], {"condition": 5}),
        [("invalid_expression", None, "e1", "data.condition")],
    ),
    (
        "edge condition reading an unknown name",
        set_in(["edges", 0, "data"], {"condition": "inptu.severity > 1"}),
        [("invalid_expression", None, "e1", "data.condition")],
    ),
    (
        "node expression reading `output`, which only edges have",
        set_in(["nodes", 1, "data", "config", "expression"], "output.x > 1"),
        [("invalid_expression", "check", None, "config.expression")],
    ),
    (
        "template reading an unknown name",
        set_in(["nodes", 2, "data", "config", "message"], "{{ payload.title }}"),
        [("invalid_template", "page", None, "config.message")],
    ),
    (
        "bad template",
        set_in(["nodes", 2, "data", "config", "message"], "hi {{ input. }}"),
        [("invalid_template", "page", None, "config.message")],
    ),
    (
        "unclosed template in a list",
        set_in(["nodes", 2, "data", "config", "recipients"], ["{{ input.to"]),
        [("invalid_template", "page", None, "config.recipients[0]")],
    ),
    (
        "source handle the type does not offer",
        set_in(["edges", 1, "sourceHandle"], "maybe"),
        [("invalid_source_handle", None, "e2", "sourceHandle")],
    ),
    (
        "edge from a condition without a handle",
        lambda d: d["edges"][1].pop("sourceHandle"),
        [("missing_source_handle", None, "e2", "sourceHandle")],
    ),
    (
        "source handle not a string",
        set_in(["edges", 0, "sourceHandle"], 3),
        [("invalid_edge", None, "e1", "sourceHandle")],
    ),
    (
        "negative retries",
        set_in(["nodes", 2, "data", "retries"], -1),
        [("invalid_option", "page", None, "data.retries")],
    ),
    (
        "retries not an integer",
        set_in(["nodes", 2, "data", "retries"], 1.5),
        [("invalid_option", "page", None, "data.retries")],
    ),
    (
        "zero timeout",
        set_in(["nodes", 2, "data", "timeout_seconds"], 0),
        [("invalid_option", "page", None, "data.timeout_seconds")],
    ),
    (
        "negative backoff",
        set_in(["nodes", 2, "data", "retry_backoff_seconds"], -2),
        [("invalid_option", "page", None, "data.retry_backoff_seconds")],
    ),
    (
        "unknown on_error",
        set_in(["nodes", 2, "data", "on_error"], "ignore"),
        [("invalid_option", "page", None, "data.on_error")],
    ),
    (
        "enabled not a bool",
        set_in(["nodes", 2, "data", "enabled"], "no"),
        [("invalid_option", "page", None, "data.enabled")],
    ),
    (
        "node data not an object",
        set_in(["nodes", 0, "data"], "x"),
        [("invalid_node", "start", None, "data")],
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(case[1], case[2]) for case in BAD_DOCUMENTS],
    ids=[case[0] for case in BAD_DOCUMENTS],
)
def test_bad_document_reports_exactly_its_problems(change: Any, expected: list[Any]) -> None:
    assert keys(check(with_changes(change))) == expected


def test_a_document_that_is_not_an_object() -> None:
    assert keys(check(["not", "an", "object"])) == [("invalid_document", None, None, None)]


def test_every_problem_is_reported_at_once_with_readable_messages() -> None:
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    document["nodes"][2]["type"] = "fax"
    document["nodes"][1]["data"]["config"]["expression"] = "(("
    document["edges"].append(edge("e1", "page", "start"))
    problems = check(document)
    assert keys(problems) == [
        ("invalid_expression", "check", None, "config.expression"),
        ("unknown_node_type", "page", None, "type"),
        ("duplicate_edge_id", None, "e1", "id"),
        ("cycle", "start", None, None),
        ("no_entry_node", None, None, None),
    ]
    messages = [p.message for p in problems]
    assert "node 'check'" in messages[0] and "`((`" in messages[0]
    assert "'fax'" in messages[1]
    assert "'start', 'check', 'page'" in messages[3]
    assert problems[0].as_dict() == {
        "code": "invalid_expression",
        "message": messages[0],
        "node_id": "check",
        "edge_id": None,
        "field": "config.expression",
    }


def test_a_disabled_edge_does_not_make_a_cycle() -> None:
    document = with_changes(append("edges", edge("back", "page", "check", data={"enabled": False})))
    assert check(document) == []


def test_error_handle_is_offered_by_every_type() -> None:
    document = with_changes(append("edges", edge("e3", "check", "page", sourceHandle="error")))
    assert check(document) == []


def test_secret_refs_and_templates_are_accepted_in_typed_fields() -> None:
    document = with_changes(
        set_in(["nodes", 1], node("check", "delay", config={"seconds": "{{ input.wait }}"}))
    )
    document["edges"][1].pop("sourceHandle")
    document["nodes"][2]["data"]["config"]["recipients"] = {"$secret": "ONCALL"}
    assert check(document) == []


def test_configuration_values_are_checked() -> None:
    problems = check(
        CONTRACT_EXAMPLE,
        configuration={"max_retries": -1, "execution_timeout_ms": 0, "retry_backoff_seconds": "x"},
    )
    assert keys(problems) == [
        ("invalid_configuration", None, None, "configuration.max_retries"),
        ("invalid_configuration", None, None, "configuration.execution_timeout_ms"),
        ("invalid_configuration", None, None, "configuration.retry_backoff_seconds"),
    ]


def test_limits_on_nodes_edges_and_size() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    edges = [edge(f"e{i}", f"n{i}", f"n{i + 1}") for i in range(3)]
    document = {"nodes": nodes, "edges": edges}
    assert validate_workflow(document, BUILTIN_NODE_TYPES, Limits(4, 3, 10_000)) == []
    size = len(json.dumps(document, separators=(",", ":")).encode())
    problems = validate_workflow(document, BUILTIN_NODE_TYPES, Limits(3, 2, size - 1))
    assert [p.code for p in problems] == ["too_many_nodes", "too_many_edges", "document_too_large"]
    told = validate_workflow(
        document, BUILTIN_NODE_TYPES, Limits(max_document_bytes=100), document_size=101
    )
    assert [p.code for p in told] == ["document_too_large"]


def test_default_limits_match_the_contract() -> None:
    assert Limits() == Limits(max_nodes=1000, max_edges=5000, max_document_bytes=1 << 20)


def test_junk_values_never_crash_validation() -> None:
    junk: list[Any] = [None, 1, "x", [], {"nodes": None}, {"nodes": [None, [], {"id": {}}]}]
    junk.append({"nodes": [node("a")], "edges": [{"id": "e", "source": ["a"], "target": 1}]})
    junk.append({"nodes": [{"id": "a", "type": "http", "data": {"config": {"url": None}}}]})
    for document in junk:
        problems = check(document)
        assert problems, document


def test_known_names_comprehension_variables_and_type_names_are_accepted() -> None:
    document = with_changes(
        set_in(
            ["nodes", 1, "data", "config", "expression"],
            "input.tags.exists(t, t == 'x') && type(instance.id) == string && size(nodes) > 0",
        )
    )
    document["edges"][0]["data"] = {"condition": "output.list.all(item, item > 0)"}
    document["nodes"][2]["data"]["config"]["message"] = "{{ input.rows.map(r, r.id) }}"
    assert check(document) == []


def test_unknown_name_message_lists_the_known_names() -> None:
    document = with_changes(set_in(["edges", 0, "data"], {"condition": "inptu.x && payload"}))
    [problem] = check(document)
    assert "'inptu', 'payload'" in problem.message
    assert "known: input, instance, nodes, output" in problem.message
