"""Sub-workflows on real workers: output, failure and cancellation propagate; no deadlock.

The module runs with MAX_CONCURRENT_WORKFLOWS=1: a parent waiting for its child holds the only
slot, so these flows complete only because children of running parents are admitted anyway.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.statuses import InstanceStatus
from models.db import transaction
from models.instance import WorkflowInstance
from models.workflow import Workflow
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps, wait_status
from tests.processes import wait_until
from worker.control import after_control, cancel, pause, resume, retry

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_other_instances(runtime: Any, cluster: Any) -> None:
    """Leftovers of other modules would hold the only slot: finish or cancel them first."""
    with transaction(runtime.session_factory) as session:
        session.execute(update(WorkflowInstance)
                        .where(WorkflowInstance.status.in_(["pending", "running", "paused"]))
                        .values(status=InstanceStatus.CANCELLED.value))


def _children(runtime: Any, parent_id: uuid.UUID) -> list[WorkflowInstance]:
    parent_steps = steps(runtime, parent_id)
    step_ids = [step.id for step in parent_steps.values()]
    with runtime.session_factory() as session:
        return list(session.scalars(select(WorkflowInstance).where(
            WorkflowInstance.parent_execution_id.in_(step_ids))))


def _parent(runtime: Any, child_wf: uuid.UUID, **call_data: Any) -> uuid.UUID:
    return make_workflow(runtime, [
        node("start", "trigger"),
        node("call", "subworkflow", {"workflow_id": str(child_wf),
                                     "input": {"n": "{{ input.n }}"}}, **call_data),
        node("after", "transform", {"output": {"got": "{{ nodes.call.output.double.value }}"}}),
    ], [edge("start", "call"), edge("call", "after")])


def test_parent_gets_the_child_output_under_a_limit_of_one(runtime: Any, cluster: Any) -> None:
    child_wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("double", "transform", {"output": {"value": "{{ input.n * 2 }}"}}),
    ], [edge("start", "double")])
    parent_id = start(runtime, _parent(runtime, child_wf), {"n": 21})

    parent = wait_status(runtime, parent_id)

    assert parent.status == "completed", parent.error_details
    assert parent.output_data == {"after": {"got": 42}}
    (child,) = _children(runtime, parent_id)
    assert child.status == "completed"
    assert child.output_data == {"double": {"value": 42}}
    assert child.triggered_by == "subworkflow" and child.trigger_source == str(parent_id)
    assert child.execution_context == {"input": {"n": 21}}
    call = steps(runtime, parent_id)["call"]
    assert call.status == "completed" and call.output_data == child.output_data
    assert child.parent_execution_id == call.id


def test_child_failure_fails_the_step_and_the_parent(runtime: Any, cluster: Any) -> None:
    child_wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("double", "transform", {"output": {"value": "{{ input.missing * 2 }}"}}),
    ], [edge("start", "double")])
    parent_id = start(runtime, _parent(runtime, child_wf), {"n": 1})

    parent = wait_status(runtime, parent_id)

    assert parent.status == "failed"
    (child,) = _children(runtime, parent_id)
    assert child.status == "failed"
    recorded = steps(runtime, parent_id)
    assert recorded["call"].status == "failed"
    assert str(child.id) in (recorded["call"].error_message or "")
    assert "after" not in recorded or recorded["after"].status != "completed"
    assert "call" in (parent.error_details or "")


def test_cancelling_the_parent_cancels_the_waiting_child(runtime: Any, cluster: Any) -> None:
    child_wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("ask", "approval", {"approver_role": "nobody", "message": "wait forever"}),
    ], [edge("start", "ask")])
    parent_id = start(runtime, _parent(runtime, child_wf), {"n": 1})
    child = wait_until(lambda: [c for c in _children(runtime, parent_id)
                                if c.status == "running"], 60.0, message="running child")[0]
    wait_until(lambda: steps(runtime, child.id).get("ask") is not None
               and steps(runtime, child.id)["ask"].status == "waiting_approval", 60.0,
               message="child waiting for approval")
    assert instance_row(runtime, parent_id).status == "running"

    with transaction(runtime.session_factory) as session:
        result = cancel(session, parent_id)
    after_control(runtime, result)

    cancelled = wait_status(runtime, child.id)
    assert cancelled.status == "cancelled"
    assert instance_row(runtime, parent_id).status == "cancelled"


def _failing_child(runtime: Any) -> uuid.UUID:
    return make_workflow(runtime, [
        node("start", "trigger"),
        node("double", "transform", {"output": {"value": "{{ input.missing * 2 }}"}}),
    ], [edge("start", "double")])


def test_on_error_continue_completes_the_step_with_the_error(runtime: Any,
                                                             cluster: Any) -> None:
    parent_wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("call", "subworkflow", {"workflow_id": str(_failing_child(runtime))},
             on_error="continue"),
        node("after", "transform", {"output": {"error": "{{ nodes.call.output.error }}"}}),
    ], [edge("start", "call"), edge("call", "after")])
    parent = wait_status(runtime, start(runtime, parent_wf, {"n": 1}))
    assert parent.status == "completed", parent.error_details
    assert "failed" in parent.output_data["after"]["error"]
    assert steps(runtime, parent.id)["call"].status == "completed"


def test_retrying_the_parent_starts_a_fresh_child(runtime: Any, cluster: Any) -> None:
    child_wf = _failing_child(runtime)
    parent_id = start(runtime, _parent(runtime, child_wf), {"n": 4})
    assert wait_status(runtime, parent_id).status == "failed"
    # Fix the child workflow; the retried step must run a new child on the new definition.
    with transaction(runtime.session_factory) as session:
        workflow = session.get(Workflow, child_wf)
        workflow.workflow_data = {"nodes": [
            node("start", "trigger"),
            node("double", "transform", {"output": {"value": "{{ input.n * 2 }}"}}),
        ], "edges": [edge("start", "double")]}
        workflow.current_version_id = None

    with transaction(runtime.session_factory) as session:
        result = retry(session, parent_id)
    after_control(runtime, result)

    parent = wait_status(runtime, parent_id)
    assert parent.status == "completed", parent.error_details
    assert parent.output_data == {"after": {"got": 8}}
    children = sorted(_children(runtime, parent_id), key=lambda c: c.created_at)
    assert [child.status for child in children] == ["failed", "completed"]


def _waiting_child_wf(runtime: Any) -> uuid.UUID:
    return make_workflow(runtime, [
        node("start", "trigger"),
        node("ask", "approval", {"approver_role": "nobody", "message": "wait forever"}),
    ], [edge("start", "ask")])


def _running_child(runtime: Any, parent_id: uuid.UUID) -> WorkflowInstance:
    child = wait_until(lambda: [c for c in _children(runtime, parent_id)
                                if c.status == "running"], 60.0, message="running child")[0]
    wait_until(lambda: steps(runtime, child.id).get("ask") is not None
               and steps(runtime, child.id)["ask"].status == "waiting_approval", 60.0,
               message="child waiting for approval")
    return child


def test_a_redelivered_step_reuses_its_child(runtime: Any, cluster: Any) -> None:
    """A worker that dies after creating the child: the re-run step must not start another."""
    from types import SimpleNamespace

    from worker.nodes.subworkflow import run

    child_wf = _waiting_child_wf(runtime)
    parent_id = start(runtime, _parent(runtime, child_wf), {"n": 1})
    child = _running_child(runtime, parent_id)
    call = steps(runtime, parent_id)["call"]
    context = SimpleNamespace(session_factory=runtime.session_factory, instance_id=parent_id,
                              step_id=call.id, expressions={"input": {"n": 1}})

    # The redelivered task runs the node again for the same step.
    suspended = run({"workflow_id": str(child_wf), "input": {"n": 1}}, context)

    assert suspended.output == {"child_instance_id": str(child.id)}
    assert [c.id for c in _children(runtime, parent_id)] == [child.id]
    with transaction(runtime.session_factory) as session:
        after_control(runtime, cancel(session, parent_id))


def test_pausing_and_resuming_the_parent_pauses_and_resumes_its_child(runtime: Any,
                                                                      cluster: Any) -> None:
    parent_id = start(runtime, _parent(runtime, _waiting_child_wf(runtime)), {"n": 1})
    child = _running_child(runtime, parent_id)

    with transaction(runtime.session_factory) as session:
        after_control(runtime, pause(session, parent_id))

    assert instance_row(runtime, parent_id).status == "paused"
    assert instance_row(runtime, child.id).status == "paused"

    with transaction(runtime.session_factory) as session:
        after_control(runtime, resume(session, parent_id))

    wait_until(lambda: instance_row(runtime, parent_id).status == "running", 60.0,
               message="parent running again")
    wait_until(lambda: instance_row(runtime, child.id).status == "running", 60.0,
               message="child running again")
    assert [c.id for c in _children(runtime, parent_id)] == [child.id]
    with transaction(runtime.session_factory) as session:
        after_control(runtime, cancel(session, parent_id))
