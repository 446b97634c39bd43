"""The workflow document model (nodes, edges, common options, graph queries); it never validates.

`parse_workflow` turns a React Flow document (`workflow_data`) into a `WorkflowGraph`. Parsing
is tolerant: junk values fall back to defaults so that validation (engine.validation) can
report problems without crashing here. Callers that execute a workflow must validate first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_EDGE_TYPE = "smoothstep"
DEFAULT_RETRY_BACKOFF_SECONDS = 1.0
ON_ERROR_FAIL = "fail"
ON_ERROR_CONTINUE = "continue"
ON_ERROR_CHOICES = (ON_ERROR_FAIL, ON_ERROR_CONTINUE)


@dataclass(frozen=True)
class Node:
    """One node of a workflow with its common options resolved."""

    id: str
    type: str
    label: str = ""
    position: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    retries: int = 0
    retry_backoff_seconds: float = DEFAULT_RETRY_BACKOFF_SECONDS
    timeout_seconds: float | None = None
    on_error: str = ON_ERROR_FAIL


@dataclass(frozen=True)
class Edge:
    """One edge; `condition` is the CEL source of `data.condition`, if any."""

    id: str
    source: str
    target: str
    source_handle: str | None = None
    target_handle: str | None = None
    type: str = DEFAULT_EDGE_TYPE
    condition: str | None = None
    enabled: bool = True


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def as_number(value: Any) -> float | None:
    """The value as a float when it is a JSON number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class WorkflowGraph:
    """Nodes in document order and edges; flow queries consider enabled edges only."""

    def __init__(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.edges: tuple[Edge, ...] = tuple(edges)
        by_id: dict[str, Node] = {}
        for node in self.nodes:
            by_id.setdefault(node.id, node)
        self.node_by_id: Mapping[str, Node] = MappingProxyType(by_id)
        incoming: dict[str, list[Edge]] = {node_id: [] for node_id in by_id}
        outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in by_id}
        for edge in self.edges:
            # Edges to unknown nodes are a validation problem; flow ignores them.
            if edge.enabled and edge.source in by_id and edge.target in by_id:
                outgoing[edge.source].append(edge)
                incoming[edge.target].append(edge)
        self._incoming = {key: tuple(value) for key, value in incoming.items()}
        self._outgoing = {key: tuple(value) for key, value in outgoing.items()}
        self._leaves = tuple(node_id for node_id in by_id if not self._outgoing[node_id])
        self._order = {node.id: index for index, node in enumerate(by_id.values())}
        self._topological: tuple[str, ...] | None = None
        # Planning reads step outputs only to evaluate edge conditions.
        self.plans_with_outputs = any(edge.condition is not None
                                      for edges in self._outgoing.values() for edge in edges)

    def node(self, node_id: str) -> Node:
        """The node with this id. Raises: KeyError when there is none."""
        return self.node_by_id[node_id]

    def incoming(self, node_id: str) -> tuple[Edge, ...]:
        """Enabled edges into the node, in document order."""
        return self._incoming.get(node_id, ())

    def outgoing(self, node_id: str) -> tuple[Edge, ...]:
        """Enabled edges out of the node, in document order."""
        return self._outgoing.get(node_id, ())

    def entry_nodes(self) -> tuple[str, ...]:
        """Ids of nodes with no incoming enabled edge."""
        return tuple(node_id for node_id in self.node_by_id if not self._incoming[node_id])

    def leaf_nodes(self) -> tuple[str, ...]:
        """Ids of nodes with no outgoing enabled edge."""
        return self._leaves

    def document_order(self, node_ids: Iterable[str]) -> tuple[str, ...]:
        """The given ids sorted in document order (unknown ids last, stable)."""
        return tuple(sorted(set(node_ids), key=lambda n: self._order.get(n, len(self._order))))

    def descendants(self, node_ids: Iterable[str]) -> frozenset[str]:
        """Every node reachable over enabled edges from the given ones (not themselves)."""
        seen: set[str] = set()
        stack = [edge.target for node_id in node_ids for edge in self.outgoing(node_id)]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(edge.target for edge in self.outgoing(current))
        return frozenset(seen)

    def cycles(self) -> list[list[str]]:
        """Node ids of each cyclic strongly connected component (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        for root in self.node_by_id:
            if root in index:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, position = work.pop()
                if position == 0:
                    index[node] = low[node] = len(index)
                    stack.append(node)
                    on_stack.add(node)
                edges = self.outgoing(node)
                if position < len(edges):
                    work.append((node, position + 1))
                    target = edges[position].target
                    if target not in index:
                        work.append((target, 0))
                    elif target in on_stack:
                        low[node] = min(low[node], index[target])
                    continue
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    self_loop = any(edge.target == node for edge in self.outgoing(node))
                    if len(component) > 1 or self_loop:
                        found.append(list(self.document_order(component)))
        return found

    def topological_order(self) -> tuple[str, ...]:
        """Node ids so every enabled edge points forward. Raises: ValueError on a cycle.

        Among ready nodes the earliest in document order goes first. Computed once per graph
        (graphs are immutable): the planner asks on every step, and a 1,000-way fan-out
        made the old sort-per-pop version the hottest line of the worker.
        """
        if self._topological is None:
            self._topological = self._kahn()
        return self._topological

    def _kahn(self) -> tuple[str, ...]:
        remaining = {node_id: len(self._incoming[node_id]) for node_id in self.node_by_id}
        ready = [(self._order[node_id], node_id) for node_id, count in remaining.items()
                 if count == 0]
        heapq.heapify(ready)
        ordered: list[str] = []
        while ready:
            _, current = heapq.heappop(ready)
            ordered.append(current)
            for edge in self._outgoing[current]:
                remaining[edge.target] -= 1
                if remaining[edge.target] == 0:
                    heapq.heappush(ready, (self._order[edge.target], edge.target))
        if len(ordered) != len(remaining):
            raise ValueError("the enabled graph has a cycle")
        return tuple(ordered)


def _default_retries(configuration: Mapping[str, Any] | None) -> int:
    value = (configuration or {}).get("max_retries")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _default_backoff(configuration: Mapping[str, Any] | None) -> float:
    value = as_number((configuration or {}).get("retry_backoff_seconds"))
    return value if value is not None and value >= 0 else DEFAULT_RETRY_BACKOFF_SECONDS


def parse_node(raw: Any, configuration: Mapping[str, Any] | None = None) -> Node:
    """One node from its React Flow form; junk values fall back to defaults."""
    node = _as_dict(raw)
    data = _as_dict(node.get("data"))
    retries = data.get("retries")
    backoff = as_number(data.get("retry_backoff_seconds"))
    timeout = as_number(data.get("timeout_seconds"))
    on_error = data.get("on_error")
    label = data.get("label")
    return Node(
        id=str(node.get("id", "")),
        type=str(node.get("type", "")),
        label=label if isinstance(label, str) else "",
        position=_as_dict(node.get("position")),
        config=_as_dict(data.get("config")),
        enabled=data.get("enabled") is not False,
        retries=retries
        if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0
        else _default_retries(configuration),
        retry_backoff_seconds=backoff
        if backoff is not None and backoff >= 0
        else _default_backoff(configuration),
        timeout_seconds=timeout if timeout is not None and timeout > 0 else None,
        on_error=on_error if on_error in ON_ERROR_CHOICES else ON_ERROR_FAIL,
    )


def parse_edge(raw: Any) -> Edge:
    """One edge from its React Flow form; junk values fall back to defaults."""
    edge = _as_dict(raw)
    data = _as_dict(edge.get("data"))
    condition = data.get("condition")
    edge_type = edge.get("type")
    return Edge(
        id=str(edge.get("id", "")),
        source=str(edge.get("source", "")),
        target=str(edge.get("target", "")),
        source_handle=_optional_str(edge.get("sourceHandle")),
        target_handle=_optional_str(edge.get("targetHandle")),
        type=edge_type if isinstance(edge_type, str) and edge_type else DEFAULT_EDGE_TYPE,
        condition=condition if isinstance(condition, str) and condition.strip() else None,
        enabled=data.get("enabled") is not False,
    )


def parse_workflow(
    workflow_data: Any, configuration: Mapping[str, Any] | None = None
) -> WorkflowGraph:
    """The graph of a `workflow_data` document, options resolved against `configuration`."""
    document = _as_dict(workflow_data)
    nodes = [parse_node(raw, configuration) for raw in _as_list(document.get("nodes"))]
    edges = [parse_edge(raw) for raw in _as_list(document.get("edges"))]
    return WorkflowGraph(nodes, edges)
