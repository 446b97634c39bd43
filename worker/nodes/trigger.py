"""The `trigger` node: an entry point whose output is the instance input."""

from __future__ import annotations

from typing import Any

from worker.nodes import with_run


def run(config: dict[str, Any], context: Any) -> Any:
    return context.input


NODE_TYPE = with_run("trigger", run)
