"""The `condition` node: evaluates its CEL expression and selects the `true` or `false` handle."""

from __future__ import annotations

from typing import Any

from engine.expressions import evaluate_condition
from worker.nodes import with_run
from worker.results import NodeResult


def run(config: dict[str, Any], context: Any) -> NodeResult:
    result = evaluate_condition(str(config.get("expression", "")), context.expressions)
    return NodeResult(output={"result": result}, handle="true" if result else "false")


NODE_TYPE = with_run("condition", run)
