"""The `transform` node: outputs its `output` config, templates already rendered by the shell."""

from __future__ import annotations

from typing import Any

from worker.nodes import with_run


def run(config: dict[str, Any], context: Any) -> Any:
    return config.get("output", {})


NODE_TYPE = with_run("transform", run)
