"""Discover node types from the `flowyard.nodes` entry-point group (built-ins included).

Returns a plain dict filled at start-up; nothing is loaded at import time.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "flowyard.nodes"


class PluginError(Exception):
    """An entry point did not load to a node type with a run function."""


def load_node_types() -> dict[str, Any]:
    """Every installed node type by name. Raises: PluginError naming a broken entry point."""
    registry: dict[str, Any] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            node_type = entry.load()
        except Exception as error:  # a broken plug-in must name itself, not crash obscurely
            raise PluginError(f"node type entry point {entry.name!r} failed to load: {error}") \
                from error
        if not callable(getattr(node_type, "run", None)):
            raise PluginError(f"node type entry point {entry.name!r} has no run function")
        registry[node_type.name] = node_type
    return registry
