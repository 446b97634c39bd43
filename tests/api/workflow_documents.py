"""Workflow documents for API tests (plain data, no fixtures)."""

from __future__ import annotations

import copy
from typing import Any


def triage_workflow(name: str = "Vulnerability triage") -> dict[str, Any]:
    """The example document of CONTRACT §1."""
    return copy.deepcopy({
        "name": name,
        "description": "Scan, rate, open a ticket, ask for approval",
        "category": "security",
        "version": "1.0.0",
        "tags": ["security", "gitlab"],
        "is_active": True,
        "is_template": False,
        "configuration": {"execution_timeout_ms": 600000, "max_retries": 2,
                          "retry_backoff_seconds": 1},
        "workflow_data": {
            "nodes": [
                {"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                 "data": {"label": "Start"}},
                {"id": "check", "type": "condition", "position": {"x": 200, "y": 0},
                 "data": {"label": "Critical?", "config": {"expression": "input.severity >= 7"}}},
                {"id": "page", "type": "notification", "position": {"x": 400, "y": 0.5},
                 "data": {"label": "Page on-call", "config": {
                     "channel": "slack", "recipients": ["https://hooks.example.com/T000/B000"],
                     "message": "Critical finding {{ input.title }}"}}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "check", "type": "smoothstep"},
                {"id": "e2", "source": "check", "target": "page", "sourceHandle": "true"},
            ],
        },
    })


def chain_workflow(name: str, nodes: int, edges_per_node: int = 1) -> dict[str, Any]:
    """A DAG of `noop` nodes: node i links to the next `edges_per_node` nodes."""
    node_list = [{"id": f"n{i}", "type": "noop", "position": {"x": i * 10, "y": 0},
                  "data": {"label": f"Node {i}"}} for i in range(nodes)]
    edge_list = []
    for i in range(nodes):
        for step in range(1, edges_per_node + 1):
            if i + step < nodes:
                edge_list.append({"id": f"e{i}-{i + step}", "source": f"n{i}",
                                  "target": f"n{i + step}"})
    return {"name": name, "workflow_data": {"nodes": node_list, "edges": edge_list}}
