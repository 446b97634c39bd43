"""No instance stays running with nothing in flight: the reconciler finds it and plans again."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from models.db import transaction
from models.instances import idle_running_instances
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import cancel_open_instances
from worker.orchestrator import execute_step
from worker.reconciler import replan_idle


def _age(runtime: Any, instance_id: uuid.UUID) -> None:
    """Past the second an instance just written is left alone."""
    with transaction(runtime.session_factory) as session:
        session.execute(text("UPDATE workflow_instances SET updated_at = now() - interval "
                             "'5 seconds' WHERE id = :id"), {"id": instance_id})


def _idle(runtime: Any) -> set[uuid.UUID]:
    with runtime.session_factory() as session:
        return set(idle_running_instances(session, limit=10_000))


def test_an_instance_whose_next_step_was_lost_is_found_and_planned_again(runtime: Any) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop"), node("b", "noop")],
                                [edge("a", "b")])
    instance_id = start(runtime, workflow_id)
    try:
        assert execute_step(runtime, steps(runtime, instance_id)["a"].id, "t", None) == "dict"
        with transaction(runtime.session_factory) as session:  # as if b's decision was lost
            session.execute(text("DELETE FROM workflow_executions WHERE instance_id = :id"
                                 " AND node_id = 'b'"), {"id": instance_id})
        _age(runtime, instance_id)
        assert instance_id in _idle(runtime)
        replan_idle(runtime)
        assert steps(runtime, instance_id)["b"].status == "pending"
        assert instance_id not in _idle(runtime)
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_an_instance_with_a_step_pending_running_or_waiting_is_not_idle(runtime: Any) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop")], [])
    instance_id = start(runtime, workflow_id)
    first = steps(runtime, instance_id)["a"].id
    try:
        for status, idle in (("pending", False), ("running", False),
                             ("waiting_approval", False), ("completed", True)):
            with transaction(runtime.session_factory) as session:
                session.execute(text("UPDATE workflow_executions SET status = :s"
                                     " WHERE id = :id"), {"s": status, "id": first})
            _age(runtime, instance_id)
            assert (instance_id in _idle(runtime)) is idle, status
        replan_idle(runtime)
        assert instance_row(runtime, instance_id).status == "completed"
    finally:
        cancel_open_instances(runtime, workflow_id)
