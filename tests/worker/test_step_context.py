"""A step's `nodes` context: read eagerly when its config or type needs it, else on first use."""

from __future__ import annotations

from typing import Any

from models.db import transaction
from models.steps import claim_step, finish_step
from tests.e2e.helpers import edge, make_workflow, node, start, steps
from worker import control
from worker.step_run import LazyNodes, prepare_step


def _complete_first(runtime: Any, config: dict[str, Any]) -> Any:
    """a -> b; a completed with an output; returns (instance id, b's step id)."""
    workflow_id = make_workflow(runtime, [node("a", "noop"), node("b", "noop", config)],
                                [edge("a", "b")])
    instance_id = start(runtime, workflow_id)
    first = steps(runtime, instance_id)["a"].id
    with transaction(runtime.session_factory) as session:
        claimed = claim_step(session, first, 30, "t")
        assert claimed is not None
        assert finish_step(session, first, expected_status="running", new_status="completed",
                           output={"answer": 42}, handle=None, error=None,
                           attempt=claimed.attempt)
        from models.instances import lock_instance
        from worker.planning import advance

        advance(session, runtime, lock_instance(session, instance_id))  # type: ignore[arg-type]
    return instance_id, steps(runtime, instance_id)["b"].id


def _cancel(runtime: Any, instance_id: Any) -> None:
    with transaction(runtime.session_factory) as session:
        control.cancel(session, instance_id)


def test_a_step_without_templates_reads_upstream_outputs_on_first_use(runtime: Any) -> None:
    instance_id, second = _complete_first(runtime, {})
    try:
        with runtime.session_factory() as session:
            prepared = prepare_step(runtime, session, second)
        assert prepared is not None
        nodes = prepared.context.expressions["nodes"]
        assert isinstance(nodes, LazyNodes)
        assert nodes["a"] == {"output": {"answer": 42}, "status": "completed"}
        assert "b" not in nodes  # only decided steps
    finally:
        _cancel(runtime, instance_id)


def test_a_templated_config_is_rendered_from_upstream_outputs(runtime: Any) -> None:
    instance_id, second = _complete_first(runtime, {"value": "{{ nodes.a.output.answer }}"})
    try:
        with runtime.session_factory() as session:
            prepared = prepare_step(runtime, session, second)
        assert prepared is not None and prepared.render_error is None
        assert prepared.rendered == {"value": 42}
        assert not isinstance(prepared.context.expressions["nodes"], LazyNodes)
    finally:
        _cancel(runtime, instance_id)
