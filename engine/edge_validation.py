"""Validation of a workflow document's edges: fields, ends, conditions and source handles.

Part of `engine.validation` (CONTRACT §1): unique ids, ends that are nodes of the workflow,
conditions that compile and read only `input`, `nodes`, `instance` and `output`, and a
source handle the source type offers (or a default one). Reports, never raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.expressions import EDGE_NAMES, expression_problems
from engine.nodetypes import NodeType
from engine.problems import Problem, identified, name_of


def _edge_field_problems(edge_id: str, raw: dict[str, Any]) -> Iterator[Problem]:
    def bad(code: str, key: str, rule: str) -> Problem:
        return Problem(code, f"edge {edge_id!r}: {rule}", edge_id=edge_id, field=key)

    for key in ("sourceHandle", "targetHandle", "type"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            yield bad("invalid_edge", key, f"{key} must be a string")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        yield bad("invalid_edge", "data", "data must be an object")
        return
    if "enabled" in data and not isinstance(data["enabled"], bool):
        yield bad("invalid_option", "data.enabled", "enabled must be true or false")
    condition = data.get("condition")
    if condition is None or (isinstance(condition, str) and not condition.strip()):
        return
    if not isinstance(condition, str):
        yield bad("invalid_expression", "data.condition", "condition must be a CEL string")
        return
    for message in expression_problems(condition, EDGE_NAMES):
        yield bad("invalid_expression", "data.condition", message)


def _edge_handle_problems(
    edge_id: str, raw: dict[str, Any], source_type: NodeType | None
) -> Iterator[Problem]:
    if source_type is None:
        return
    handle = raw.get("sourceHandle")
    source = raw["source"]
    if isinstance(handle, str) and handle:
        if not source_type.offers(handle):
            offered = ", ".join((*source_type.handles, "error"))
            yield Problem(
                "invalid_source_handle",
                f"edge {edge_id!r}: node {source!r} of type {source_type.name!r} has no handle "
                f"{handle!r} (it offers {offered})",
                edge_id=edge_id,
                field="sourceHandle",
            )
    elif handle is None or handle == "":
        if source_type.default_handle is None:
            yield Problem(
                "missing_source_handle",
                f"edge {edge_id!r}: node {source!r} of type {source_type.name!r} has no default "
                f"handle, so the edge needs a sourceHandle (one of "
                f"{', '.join(source_type.handles)})",
                edge_id=edge_id,
                field="sourceHandle",
            )


def edge_problems(
    raw_edges: list[Any], node_types: Mapping[str, NodeType | None]
) -> Iterator[Problem]:
    for item in identified(raw_edges, "edge"):
        if isinstance(item, Problem):
            yield item
            continue
        edge_id, raw = item
        yield from _edge_field_problems(edge_id, raw)
        ends_known = True
        for end in ("source", "target"):
            name = name_of(raw.get(end))
            if name is None:
                ends_known = False
                yield Problem(
                    "missing_field",
                    f"edge {edge_id!r} needs a string {end}",
                    edge_id=edge_id,
                    field=end,
                )
            elif name not in node_types:
                ends_known = False
                yield Problem(
                    "unknown_node",
                    f"edge {edge_id!r}: {end} {name!r} is not a node of this workflow",
                    edge_id=edge_id,
                    field=end,
                )
        if ends_known:
            yield from _edge_handle_problems(edge_id, raw, node_types[raw["source"]])
