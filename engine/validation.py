"""Validation of workflow documents, reporting every problem at once; it never raises on junk.

Rules (CONTRACT §1): document shape and required fields, unique node and edge ids, edges that
refer to existing nodes, an acyclic enabled graph (each cycle named by its nodes), at least one
entry node, registered node types, each config valid for its type, every CEL expression and
`{{ }}` template compiles and reads only the names of CONTRACT §3 (`input`, `nodes`,
`instance`, and `output` in edge conditions, so a typo such as `inptu` is caught at save
time), source handles offered by the source type (an edge without one from a type with no
default handle is a problem), common option types, and size limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.document import ON_ERROR_CHOICES, WorkflowGraph, as_number, parse_workflow
from engine.edge_validation import edge_problems
from engine.expressions import NODE_NAMES, expression_problems
from engine.nodetypes import NodeType
from engine.problems import Problem, identified, name_of
from engine.templating import find_template_problems

__all__ = ["Limits", "Problem", "validate_workflow"]


@dataclass(frozen=True)
class Limits:
    """Size limits of one workflow document."""

    max_nodes: int = 1000
    max_edges: int = 5000
    max_document_bytes: int = 1 << 20


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_non_negative_int(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _is_non_negative_number(value: Any) -> bool:
    number = as_number(value)
    return number is not None and number >= 0


def _shape_problems(document: Any) -> tuple[list[Problem], list[Any], list[Any]]:
    if not isinstance(document, dict):
        return [Problem("invalid_document", "workflow_data must be an object")], [], []
    problems: list[Problem] = []
    nodes, edges = document.get("nodes", []), document.get("edges", [])
    if not isinstance(nodes, list):
        problems.append(Problem("invalid_document", "nodes must be a list", field="nodes"))
        nodes = []
    if not isinstance(edges, list):
        problems.append(Problem("invalid_document", "edges must be a list", field="edges"))
        edges = []
    return problems, nodes, edges


def _limit_problems(
    document: Any, nodes: list[Any], edges: list[Any], limits: Limits, size: int | None
) -> Iterator[Problem]:
    if len(nodes) > limits.max_nodes:
        yield Problem(
            "too_many_nodes", f"{len(nodes)} nodes exceed the limit of {limits.max_nodes}"
        )
    if len(edges) > limits.max_edges:
        yield Problem(
            "too_many_edges", f"{len(edges)} edges exceed the limit of {limits.max_edges}"
        )
    if size is None:
        try:
            size = len(json.dumps(document, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            size = 0
    if size > limits.max_document_bytes:
        yield Problem(
            "document_too_large",
            f"the document is {size} bytes, over the limit of {limits.max_document_bytes}",
        )


def _option_problems(node_id: str, data: Mapping[str, Any]) -> Iterator[Problem]:
    def bad(key: str, rule: str) -> Problem:
        return Problem(
            "invalid_option", f"node {node_id!r}: {rule}", node_id=node_id, field=f"data.{key}"
        )

    if "label" in data and not isinstance(data["label"], str):
        yield bad("label", "label must be a string")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        yield bad("enabled", "enabled must be true or false")
    retries = data.get("retries")
    if retries is not None and not (_is_int(retries) and retries >= 0):
        yield bad("retries", "retries must be an integer >= 0")
    backoff = data.get("retry_backoff_seconds")
    backoff_number = as_number(backoff)
    if backoff is not None and (backoff_number is None or backoff_number < 0):
        yield bad("retry_backoff_seconds", "retry_backoff_seconds must be a number >= 0")
    timeout = data.get("timeout_seconds")
    timeout_number = as_number(timeout)
    if timeout is not None and (timeout_number is None or timeout_number <= 0):
        yield bad("timeout_seconds", "timeout_seconds must be a number > 0")
    if "on_error" in data and data["on_error"] not in ON_ERROR_CHOICES:
        yield bad("on_error", "on_error must be one of: " + ", ".join(ON_ERROR_CHOICES))


def _flatten(messages: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{path}.{key}")
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        yield path, " ".join(messages)
    elif isinstance(messages, list):
        for item in messages:
            yield from _flatten(item, path)
    else:
        yield path, str(messages)


def _config_problems(
    node_id: str, node_type: NodeType, config: dict[str, Any]
) -> Iterator[Problem]:
    for where, message in _flatten(node_type.config_problems(config), "config"):
        yield Problem(
            "invalid_config", f"node {node_id!r}: {where}: {message}", node_id=node_id, field=where
        )
    for key in node_type.expression_fields:
        source = config.get(key)
        if not isinstance(source, str) or not source.strip():
            continue
        for message in expression_problems(source, NODE_NAMES):
            yield Problem(
                "invalid_expression",
                f"node {node_id!r}: {message}",
                node_id=node_id,
                field=f"config.{key}",
            )


def _template_problems(
    node_id: str, node_type: NodeType | None, config: dict[str, Any]
) -> Iterator[Problem]:
    skipped = set(node_type.expression_fields) if node_type else set()
    rendered = {key: value for key, value in config.items() if key not in skipped}
    for where, message in find_template_problems(rendered, "config", NODE_NAMES):
        yield Problem(
            "invalid_template",
            f"node {node_id!r}: {where}: {message}",
            node_id=node_id,
            field=where,
        )


def _node_problems(raw_nodes: list[Any], registry: Mapping[str, NodeType]) -> Iterator[Problem]:
    for item in identified(raw_nodes, "node"):
        if isinstance(item, Problem):
            yield item
            continue
        node_id, raw = item
        yield from _one_node_problems(node_id, raw, registry)


def _one_node_problems(
    node_id: str, raw: dict[str, Any], registry: Mapping[str, NodeType]
) -> Iterator[Problem]:
    data = raw.get("data", {})
    if not isinstance(data, dict):
        yield Problem(
            "invalid_node",
            f"node {node_id!r}: data must be an object",
            node_id=node_id,
            field="data",
        )
        data = {}
    config = data.get("config", {})
    if not isinstance(config, dict):
        yield Problem(
            "invalid_config",
            f"node {node_id!r}: config must be an object",
            node_id=node_id,
            field="config",
        )
        config = {}
    yield from _option_problems(node_id, data)
    type_name = name_of(raw.get("type"))
    node_type = registry.get(type_name) if type_name else None
    if type_name is None:
        yield Problem(
            "missing_field", f"node {node_id!r} needs a string type", node_id=node_id, field="type"
        )
    elif node_type is None:
        yield Problem(
            "unknown_node_type",
            f"node {node_id!r}: type {type_name!r} is not registered",
            node_id=node_id,
            field="type",
        )
    else:
        yield from _config_problems(node_id, node_type, config)
    yield from _template_problems(node_id, node_type, config)


def _graph_problems(graph: WorkflowGraph) -> Iterator[Problem]:
    for component in graph.cycles():
        yield Problem(
            "cycle",
            "the enabled edges form a cycle through nodes " + ", ".join(map(repr, component)),
            node_id=component[0],
        )
    if not graph.entry_nodes():
        yield Problem(
            "no_entry_node", "the workflow needs at least one node with no incoming enabled edge"
        )


def _configuration_problems(configuration: Mapping[str, Any] | None) -> Iterator[Problem]:
    if configuration is None:
        return
    if not isinstance(configuration, Mapping):
        yield Problem("invalid_configuration", "configuration must be an object")
        return
    rules: dict[str, tuple[Callable[[Any], bool], str]] = {
        "max_retries": (_is_non_negative_int, "an integer >= 0"),
        "execution_timeout_ms": (_is_positive_int, "an integer > 0"),
        "retry_backoff_seconds": (_is_non_negative_number, "a number >= 0"),
    }
    for key, (check, rule) in rules.items():
        if key in configuration and not check(configuration[key]):
            yield Problem(
                "invalid_configuration",
                f"configuration.{key} must be {rule}",
                field=f"configuration.{key}",
            )
    yield from _notify_problems(configuration.get("notify"))


# The names each notice event renders with (worker.notifications.notices and the approval node).
_NOTIFY_NAMES: dict[str, frozenset[str]] = {
    "on_failure": NODE_NAMES,
    "on_completion": NODE_NAMES,
    "on_approval_requested": NODE_NAMES | {"approval"},
}


def _notify_problems(notify: Any) -> Iterator[Problem]:
    """Templates of `configuration.notify` subjects and messages, checked at save time."""
    if not isinstance(notify, Mapping):
        return
    for event, names in _NOTIFY_NAMES.items():
        entries = notify.get(event)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, Mapping):
                continue
            texts = {key: entry[key] for key in ("subject", "message") if key in entry}
            path = f"configuration.notify.{event}[{index}]"
            for where, message in find_template_problems(texts, path, names):
                yield Problem("invalid_template", f"{where}: {message}", field=where)


def validate_workflow(
    workflow_data: Any,
    registry: Mapping[str, NodeType],
    limits: Limits | None = None,
    configuration: Mapping[str, Any] | None = None,
    document_size: int | None = None,
) -> list[Problem]:
    """Every problem of a workflow document at once; an empty list means it is valid.

    `document_size` is the document's size in bytes when the caller knows it (else the
    compact JSON encoding is measured).
    """
    limits = limits or Limits()
    problems, raw_nodes, raw_edges = _shape_problems(workflow_data)
    problems.extend(_configuration_problems(configuration))
    problems.extend(_limit_problems(workflow_data, raw_nodes, raw_edges, limits, document_size))
    problems.extend(_node_problems(raw_nodes, registry))
    node_types: dict[str, NodeType | None] = {}
    for raw in raw_nodes:
        node_id = name_of(raw.get("id")) if isinstance(raw, dict) else None
        if node_id is not None and node_id not in node_types:
            type_name = name_of(raw.get("type"))
            node_types[node_id] = registry.get(type_name) if type_name else None
    problems.extend(edge_problems(raw_edges, node_types))
    if isinstance(workflow_data, dict):
        valid_nodes = [raw for raw in raw_nodes if isinstance(raw, dict) and name_of(raw.get("id"))]
        valid_edges = [raw for raw in raw_edges if isinstance(raw, dict)]
        graph = parse_workflow({"nodes": valid_nodes, "edges": valid_edges})
        problems.extend(_graph_problems(graph))
    return problems
