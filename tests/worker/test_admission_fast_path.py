"""The execute fast path: a new instance starts at once only when nothing waits before it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from models.db import transaction
from models.workflow import Workflow
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import cancel_open_instances, deciding_runtime, running_now
from worker.admission import admit_and_dispatch, admit_new
from worker.launch import create_instance


@pytest.fixture
def workflow(runtime: Any) -> Iterator[tuple[Any, uuid.UUID]]:
    workflow_id = make_workflow(runtime, [node("a", "noop"), node("b", "noop")],
                                [edge("a", "b")])
    yield runtime, workflow_id
    cancel_open_instances(runtime, workflow_id)


def test_a_new_instance_alone_starts_at_once_with_its_clock_and_first_step(
        workflow: tuple[Any, uuid.UUID]) -> None:
    runtime, workflow_id = workflow
    instance_id = start(runtime, workflow_id, fast_path=True)
    row = instance_row(runtime, instance_id)
    assert row.status == "running"
    assert row.started_at is not None and row.deadline_at is not None
    assert (row.deadline_at - row.started_at).total_seconds() * 1000 == pytest.approx(
        runtime.settings.workflow_execution_timeout_ms)
    assert {n: s.status for n, s in steps(runtime, instance_id).items()} == {"a": "pending"}


def test_a_new_instance_queues_behind_an_older_pending_one(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    _, workflow_id = workflow
    # One slot left: the older, higher-priority instance must get it, not the new one.
    with deciding_runtime(settings, running_now(workflow[0])) as full:
        waiting = start(full, workflow_id, priority="high")
        assert instance_row(full, waiting).status == "pending"
        one_slot_left = running_now(full) + 1
    with deciding_runtime(settings, one_slot_left) as one_slot:
        newest = start(one_slot, workflow_id, fast_path=True)
        assert instance_row(one_slot, waiting).status == "running"
        assert instance_row(one_slot, newest).status == "pending"


def test_a_new_instance_at_the_limit_stays_pending(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    _, workflow_id = workflow
    with deciding_runtime(settings, max(1, running_now(workflow[0]))) as full:
        if running_now(full) == 0:
            start(full, workflow_id)  # take the only slot
        newest = start(full, workflow_id, fast_path=True)
        assert instance_row(full, newest).status == "pending"
        assert steps(full, newest) == {}


def test_with_room_for_every_waiting_instance_the_new_one_starts_at_once(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    runtime, workflow_id = workflow
    # Another launch's instance, created and not yet admitted (its admission runs next).
    with transaction(runtime.session_factory) as session:
        workflow_row = session.get(Workflow, workflow_id)
        other, _ = create_instance(session, workflow_row, {}, "high")
        other_id = other.id
    with deciding_runtime(settings, running_now(runtime) + 2) as roomy:
        newest = start(roomy, workflow_id, fast_path=True)
        # Two slots for two waiting instances: starting this one overtakes nobody.
        assert instance_row(roomy, newest).status == "running"
        assert instance_row(roomy, other_id).status == "pending"


def test_an_instance_another_pass_started_first_is_left_alone(
        workflow: tuple[Any, uuid.UUID]) -> None:
    """Under load a worker's pass can start a new instance between its commit and its own
    admission: that admission then has nothing to do, and runs no full pass either."""
    runtime, workflow_id = workflow
    with transaction(runtime.session_factory) as session:
        workflow_row = session.get(Workflow, workflow_id)
        first, _ = create_instance(session, workflow_row, {})
        first_id, version_id = first.id, first.workflow_version_id
    admit_and_dispatch(runtime)  # another process's pass starts it
    started_steps = {n: (s.id, s.status) for n, s in steps(runtime, first_id).items()}
    # Another launch's instance, created and not yet admitted (its own admission runs next).
    with transaction(runtime.session_factory) as session:
        other, _ = create_instance(session, session.get(Workflow, workflow_id), {})
        other_id = other.id
    assert admit_new(runtime, first_id, version_id) is None
    assert instance_row(runtime, first_id).status == "running"
    assert {n: (s.id, s.status) for n, s in steps(runtime, first_id).items()} == started_steps
    assert instance_row(runtime, other_id).status == "pending"
