"""A pure step (noop, trigger, transform, condition) runs before it is claimed; its claim and
its result are then recorded in one transaction, fenced as a claim is."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from models.db import transaction
from models.steps import claim_step
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import cancel_open_instances, refuse_calls
from worker import control, orchestrator
from worker.orchestrator import execute_step
from worker.step_run import ExpectedNode


def _expected(runtime: Any, instance_id: uuid.UUID, node_id: str,
              step_type: str = "noop") -> ExpectedNode:
    version_id = instance_row(runtime, instance_id).workflow_version_id
    assert version_id is not None
    return ExpectedNode(node_id, step_type, version_id)


@pytest.fixture
def never_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the delivery claims the step the ordinary way."""
    refuse_calls(monkeypatch, orchestrator, ["claim_step", "claim_expected_step"],
                 "a pure step was claimed before it ran")


@pytest.mark.parametrize("with_hint", [True, False], ids=["message-names-node", "id-only"])
def test_a_pure_step_is_recorded_from_pending_to_completed_in_one_go(
        runtime: Any, never_claimed: None, with_hint: bool) -> None:
    workflow_id = make_workflow(
        runtime, [node("a", "transform", {"output": {"seen": "{{ input.ticket }}"}}),
                  node("b", "noop")], [edge("a", "b")])
    instance_id = start(runtime, workflow_id, input={"ticket": 7})
    try:
        first = steps(runtime, instance_id)["a"]
        hint = _expected(runtime, instance_id, "a", "transform") if with_hint else None
        assert execute_step(runtime, first.id, "t-a", hint) == "dict"
        after = steps(runtime, instance_id)
        done = after["a"]
        assert (done.status, done.attempt, done.celery_task_id) == ("completed", 1, "t-a")
        assert done.input_data == {"output": {"seen": 7}}  # a whole template keeps its type
        assert done.output_data == {"seen": 7}
        assert done.started_at is not None and done.started_at == done.completed_at
        assert (done.duration_ms, done.lease_expires_at, done.error_message) == (0, None, None)
        assert after["b"].status == "pending"
        instance = instance_row(runtime, instance_id)
        assert (instance.current_step, instance.progress) == ("a", 50)
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_pure_condition_selects_its_handle(runtime: Any, never_claimed: None) -> None:
    workflow_id = make_workflow(
        runtime, [node("check", "condition", {"expression": "input.severity > 3"}),
                  node("page", "noop"), node("log", "noop")],
        [edge("check", "page", "true"), edge("check", "log", "false")])
    instance_id = start(runtime, workflow_id, input={"severity": 5})
    try:
        check = steps(runtime, instance_id)["check"]
        assert execute_step(runtime, check.id, "t", None) == "NodeResult"
        after = steps(runtime, instance_id)
        assert after["check"].output_data == {"result": True}
        assert after["check"].selected_handle == "true"
        assert (after["page"].status, after["log"].status) == ("pending", "skipped")
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_pure_parents_of_a_join_decide_it_once(runtime: Any, never_claimed: None) -> None:
    workflow_id = make_workflow(
        runtime, [node("a", "noop"), node("b", "noop"), node("join", "noop")],
        [edge("a", "join"), edge("b", "join")])
    instance_id = start(runtime, workflow_id)
    try:
        assert execute_step(runtime, steps(runtime, instance_id)["a"].id, "t", None) == "dict"
        after_one = steps(runtime, instance_id)
        assert "join" not in after_one and after_one["a"].status == "completed"
        assert execute_step(runtime, after_one["b"].id, "t", None) == "dict"
        after_both = steps(runtime, instance_id)
        assert after_both["join"].status == "pending"
        assert instance_row(runtime, instance_id).current_step == "b"
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_step_claimed_while_its_pure_handler_ran_keeps_that_claim(
        runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop"), node("b", "noop")],
                                [edge("a", "b")])
    instance_id = start(runtime, workflow_id)
    first = steps(runtime, instance_id)["a"].id
    original = orchestrator.run_handler

    def claimed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        with transaction(runtime.session_factory) as session:  # another delivery's claim
            assert claim_step(session, first, 30, "t-other") is not None
        return original(*args, **kwargs)

    monkeypatch.setattr(orchestrator, "run_handler", claimed_meanwhile)
    try:
        assert execute_step(runtime, first, "t-late", None) == "stale"
        after = steps(runtime, instance_id)
        assert (after["a"].status, after["a"].attempt) == ("running", 1)
        assert after["a"].celery_task_id == "t-other"
        assert "b" not in after
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_pure_step_of_a_paused_instance_stays_pending(runtime: Any) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop")], [])
    instance_id = start(runtime, workflow_id)
    try:
        with transaction(runtime.session_factory) as session:
            control.pause(session, instance_id)
        first = steps(runtime, instance_id)["a"]
        assert execute_step(runtime, first.id, "t", _expected(runtime, instance_id, "a")) \
            == "stale"
        after = steps(runtime, instance_id)["a"]
        assert (after.status, after.attempt, after.updated_at) == \
            ("pending", 0, first.updated_at)
        assert instance_row(runtime, instance_id).current_step is None
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_pure_step_not_due_yet_stays_pending(runtime: Any) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop")], [])
    instance_id = start(runtime, workflow_id)
    first = steps(runtime, instance_id)["a"].id
    try:
        with transaction(runtime.session_factory) as session:  # as a retry's backoff leaves it
            session.execute(text("UPDATE workflow_executions SET run_after = now() + "
                                 "interval '1 hour' WHERE id = :id"), {"id": first})
        assert execute_step(runtime, first, "t", None) == "stale"
        assert steps(runtime, instance_id)["a"].status == "pending"
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_failing_pure_step_is_claimed_then_recorded_as_failed(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("check", "condition", {"expression": "input.missing > 3"})], [])
    instance_id = start(runtime, workflow_id, input={})
    try:
        check = steps(runtime, instance_id)["check"].id
        assert execute_step(runtime, check, "t-check", None) == "StepFailure"
        failed = steps(runtime, instance_id)["check"]
        assert (failed.status, failed.attempt, failed.celery_task_id) == \
            ("failed", 1, "t-check")
        assert failed.error_message and "missing" in failed.error_message
        assert instance_row(runtime, instance_id).status == "failed"
    finally:
        cancel_open_instances(runtime, workflow_id)
