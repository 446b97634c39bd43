"""Which instance ends run an admission pass: only those a pending instance waits on.

A new instance is admitted by its own launch right after its commit; an instance end
runs a full pass only for instances a pass could not start (no slot), resumed or retried
ones, and sub-workflow children.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from models.db import transaction
from models.workflow import Workflow
from tests.e2e.helpers import instance_row, make_workflow, node, start
from tests.worker.helpers import (
    cancel_open_instances,
    claim_node,
    deciding_runtime,
    refuse_calls,
    running_now,
)
from worker import admission, control
from worker.admission import admit_and_dispatch, admit_if_waiting, admit_new
from worker.launch import create_instance
from worker.orchestrator import apply_after_commit, record_outcome
from worker.results import NodeResult


@pytest.fixture
def workflow(runtime: Any) -> Iterator[tuple[Any, uuid.UUID]]:
    workflow_id = make_workflow(runtime, [node("only", "noop")], [])
    yield runtime, workflow_id
    cancel_open_instances(runtime, workflow_id)


def _create(runtime: Any, workflow_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID | None]:
    """An instance as a launch commits it, before the launch's own admission."""
    with transaction(runtime.session_factory) as session:
        instance, _ = create_instance(session, session.get(Workflow, workflow_id), {})
        return instance.id, instance.workflow_version_id


def _end_without_a_pass(runtime: Any, instance_id: uuid.UUID) -> None:
    """End an instance (cancel) without the admission pass its end would run."""
    with transaction(runtime.session_factory) as session:
        control.cancel(session, instance_id)


def test_an_instance_end_leaves_a_new_instance_to_its_own_launch(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    runtime, workflow_id = workflow
    with deciding_runtime(settings) as roomy:
        admit_and_dispatch(roomy)  # nothing older waits for a pass
        new_id, version_id = _create(roomy, workflow_id)
        assert admit_if_waiting(roomy) == 0
        assert instance_row(roomy, new_id).status == "pending"
        assert admit_new(roomy, new_id, version_id) is not None
        assert instance_row(roomy, new_id).status == "running"


def test_an_instance_end_admits_one_that_found_no_slot(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    runtime, workflow_id = workflow
    with deciding_runtime(settings, running_now(runtime) + 1) as one_slot:
        holder = start(one_slot, workflow_id, fast_path=True)
        waiting = start(one_slot, workflow_id, fast_path=True)
        assert instance_row(one_slot, holder).status == "running"
        assert instance_row(one_slot, waiting).status == "pending"
        _end_without_a_pass(one_slot, holder)
        assert admit_if_waiting(one_slot) == 1
        assert instance_row(one_slot, waiting).status == "running"


def test_an_instance_end_admits_a_resumed_one(
        settings: Any, workflow: tuple[Any, uuid.UUID]) -> None:
    runtime, workflow_id = workflow
    with deciding_runtime(settings) as roomy:
        paused = start(roomy, workflow_id, fast_path=True)
        with transaction(roomy.session_factory) as session:
            control.pause(session, paused)
        with transaction(roomy.session_factory) as session:
            control.resume(session, paused)  # pending again; its own pass is not run here
        assert admit_if_waiting(roomy) >= 0
        assert instance_row(roomy, paused).status == "running"


def test_a_slot_that_frees_while_a_pass_defers_is_not_lost(
        settings: Any, workflow: tuple[Any, uuid.UUID], monkeypatch: Any) -> None:
    """The race the deferring pass covers: an instance ends after the pass counted the
    running ones, and its end looks for deferred instances before the pass's marks are
    committed, so it runs no pass. The deferring pass then sees the free slot itself."""
    runtime, workflow_id = workflow
    with deciding_runtime(settings) as roomy:
        admit_and_dispatch(roomy)  # nothing older waits for a pass
    with deciding_runtime(settings, running_now(runtime) + 1) as one_slot:
        holder = start(one_slot, workflow_id, fast_path=True)
        new_id, _ = _create(one_slot, workflow_id)
        real_admit = admission.admit
        end_checks: list[int] = []

        def admit_then_end_the_holder(session: Any, rt: Any) -> Any:
            result = real_admit(session, rt)  # no room: defers the new instance
            if not end_checks:  # before this pass commits its marks...
                _end_without_a_pass(rt, holder)  # ...the holder ends,
                end_checks.append(admit_if_waiting(rt))  # and its end finds nothing to do
            return result

        monkeypatch.setattr(admission, "admit", admit_then_end_the_holder)
        admit_and_dispatch(one_slot)
        assert end_checks == [0]
        assert instance_row(one_slot, new_id).status == "running"


def _end_by_its_only_step(runtime: Any, instance_id: uuid.UUID) -> bool | None:
    """Complete the instance's one step as a worker would, and act on it after commit;
    whether the end read that a pending instance waits for a pass."""
    after = record_outcome(runtime, claim_node(runtime, instance_id, "only"), NodeResult({}))
    assert after.instance_ended
    apply_after_commit(runtime, after)
    return after.pass_needed


def test_a_step_ending_its_instance_reads_whether_to_admit_with_its_commit(
        settings: Any, workflow: tuple[Any, uuid.UUID], monkeypatch: Any) -> None:
    runtime, workflow_id = workflow
    with deciding_runtime(settings) as roomy:
        admit_and_dispatch(roomy)  # nothing older waits for a pass
    with deciding_runtime(settings, running_now(runtime) + 1) as one_slot:
        holder = start(one_slot, workflow_id, fast_path=True)
        waiting = start(one_slot, workflow_id, fast_path=True)
        assert instance_row(one_slot, waiting).status == "pending"
        refuse_calls(monkeypatch, admission, ["admit_if_waiting"],
                     "the end's check goes out with its COMMIT, not on its own")

        assert _end_by_its_only_step(one_slot, holder) is True
        assert instance_row(one_slot, holder).status == "completed"
        assert instance_row(one_slot, waiting).status == "running"

        # Nothing waits now: the next end runs no pass.
        refuse_calls(monkeypatch, admission, ["admit_and_dispatch"],
                     "no pending instance waits for a pass")
        assert _end_by_its_only_step(one_slot, waiting) is False
