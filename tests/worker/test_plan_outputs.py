"""Planning reads the steps' outputs only when an edge condition may look at them."""

from __future__ import annotations

import uuid
from typing import Any

from models.db import transaction
from models.steps import lock_instance_and_complete_step
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import cancel_open_instances, claim_node
from worker.orchestrator import execute_step


def _run_all(runtime: Any, instance_id: uuid.UUID) -> None:
    """Run every pending step, as workers would, until none is left."""
    while pending := [s for s in steps(runtime, instance_id).values() if s.status == "pending"]:
        for step in pending:
            execute_step(runtime, step.id, f"t-{step.node_id}")


def test_a_completion_can_leave_the_outputs_unread(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("a", "transform", {"output": {"n": 1}}), node("b", "noop")],
        [edge("a", "b")])
    instance_id = start(runtime, workflow_id)
    try:
        claimed = claim_node(runtime, instance_id, "a")
        with transaction(runtime.session_factory) as session:
            _, states = lock_instance_and_complete_step(
                session.connection(), instance_id, claimed.id, claimed.attempt,
                {"n": 1}, None, with_outputs=False)
        assert states is not None and [s.output_data for s in states] == [None]
        assert steps(runtime, instance_id)["a"].output_data == {"n": 1}
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_without_edge_conditions_the_instance_still_ends_with_its_leaves_outputs(
        runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("a", "transform", {"output": {"n": 1}}),
                  node("b", "transform", {"output": {"n": 2}}),
                  node("c", "transform", {"output": {"n": 3}})],
        [edge("a", "b"), edge("a", "c")])
    instance_id = start(runtime, workflow_id)
    _run_all(runtime, instance_id)
    row = instance_row(runtime, instance_id)
    assert row.status == "completed"
    assert row.output_data == {"b": {"n": 2}, "c": {"n": 3}}


def test_edge_conditions_still_decide_on_the_outputs(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("a", "transform", {"output": {"severity": 9}}),
                  node("page", "noop"), node("log", "noop")],
        [edge("a", "page", condition="output.severity >= 7"),
         edge("a", "log", condition="output.severity < 7")])
    instance_id = start(runtime, workflow_id)
    _run_all(runtime, instance_id)
    decided = steps(runtime, instance_id)
    assert (decided["page"].status, decided["log"].status) == ("completed", "skipped")
    assert instance_row(runtime, instance_id).status == "completed"
