"""The `noop` node: does nothing and outputs `{}` (joins, placeholders, benchmarks)."""

from __future__ import annotations

from typing import Any

from worker.nodes import with_run


def run(config: dict[str, Any], context: Any) -> Any:
    return {}


NODE_TYPE = with_run("noop", run)
