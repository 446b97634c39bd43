"""The per-process lease keeper: one beat extends every held lease, superseded attempts drop."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text

from models.db import transaction
from models.steps import claim_step
from tests.e2e.helpers import make_workflow, node, start, steps
from worker import control
from worker.leases import LeaseKeeper


def _claimed_step(runtime: Any) -> tuple[uuid.UUID, uuid.UUID, int]:
    instance_id = start(runtime, make_workflow(runtime, [node("only", "noop")], []))
    step_id = steps(runtime, instance_id)["only"].id
    with transaction(runtime.session_factory) as session:
        claimed = claim_step(session, step_id, 30, "task-1")
    assert claimed is not None
    return instance_id, step_id, claimed.attempt


def _expire_soon(runtime: Any, step_id: uuid.UUID) -> datetime:
    """Pull the lease to one second from now; returns the new expiry."""
    with transaction(runtime.session_factory) as session:
        return session.execute(text(
            "UPDATE workflow_executions SET lease_expires_at = now() + interval '1 second'"
            " WHERE id = :id RETURNING lease_expires_at"), {"id": step_id}).scalar_one()


def _lease(runtime: Any, step_id: uuid.UUID) -> datetime:
    with runtime.session_factory() as session:
        return session.execute(text(
            "SELECT lease_expires_at FROM workflow_executions WHERE id = :id"),
            {"id": step_id}).scalar_one()


def _cancel(runtime: Any, instance_id: uuid.UUID) -> None:
    with transaction(runtime.session_factory) as session:
        control.cancel(session, instance_id)


def test_one_beat_extends_every_held_lease(runtime: Any) -> None:
    first_instance, first, first_attempt = _claimed_step(runtime)
    second_instance, second, second_attempt = _claimed_step(runtime)
    try:
        keeper = LeaseKeeper(runtime.session_factory, 600)
        keeper.hold(first, first_attempt)
        keeper.hold(second, second_attempt)
        shortened = {step: _expire_soon(runtime, step) for step in (first, second)}
        keeper.beat()
        for step, before in shortened.items():
            assert (_lease(runtime, step) - before).total_seconds() > 500
        keeper.release(first)
        assert keeper.held() == {second: second_attempt}
    finally:
        _cancel(runtime, first_instance)
        _cancel(runtime, second_instance)


def test_a_superseded_attempt_is_dropped_and_its_lease_left_alone(runtime: Any) -> None:
    instance_id, step_id, attempt = _claimed_step(runtime)
    try:
        keeper = LeaseKeeper(runtime.session_factory, 600)
        keeper.hold(step_id, attempt - 1)  # an attempt the database no longer runs
        before = _expire_soon(runtime, step_id)
        keeper.beat()
        assert _lease(runtime, step_id) == before
        assert keeper.held() == {}
    finally:
        _cancel(runtime, instance_id)
