"""The one-round-trip launch of a pinned workflow (`insert_pinned_instance_locking_admission`)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from models.instances import ADMISSION_LOCK_KEY, insert_pinned_instance_locking_admission
from models.workflow import Workflow, WorkflowVersion

_VALUES = {"priority": "normal", "execution_context": {"input": {"n": 1}},
           "triggered_by": "manual", "trigger_source": "api"}
_DOCUMENT = {"nodes": [{"id": "a", "type": "noop", "position": {"x": 0, "y": 0},
                        "data": {}}], "edges": []}


def _workflow(session: Any, *, pinned: bool, active: bool = True) -> uuid.UUID:
    workflow = Workflow(name=f"launch-{uuid.uuid4().hex[:8]}", workflow_data=_DOCUMENT,
                        configuration={}, is_active=active)
    session.add(workflow)
    session.flush()
    if pinned:
        version = WorkflowVersion(workflow_id=workflow.id, revision=1, version="1.0.0",
                                  workflow_data=_DOCUMENT, configuration={})
        session.add(version)
        session.flush()
        workflow.current_version_id = version.id
        session.flush()
    return workflow.id


def _admission_lock_is_free(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as other:
        row = other.execute("SELECT pg_try_advisory_lock(%s)", (ADMISSION_LOCK_KEY,)).fetchone()
        assert row is not None
        if row[0]:
            other.execute("SELECT pg_advisory_unlock(%s)", (ADMISSION_LOCK_KEY,))
        return bool(row[0])


def test_a_pinned_active_workflow_gets_its_instance_and_the_lock(
        db_session: Any, database_url: str) -> None:
    workflow_id = _workflow(db_session, pinned=True)
    launched = insert_pinned_instance_locking_admission(db_session, workflow_id, _VALUES)
    assert launched is not None
    instance, room = launched
    assert (instance.workflow_id, instance.status, instance.progress,
            instance.execution_context, instance.triggered_by) == (
        workflow_id, "pending", 0, {"input": {"n": 1}}, "manual")
    assert instance.workflow_version_id is not None and instance.created_at is not None
    assert instance in db_session and not db_session.dirty and not db_session.new
    assert room.others_waiting >= 0 and room.running >= 0
    assert not _admission_lock_is_free(database_url)


@pytest.mark.parametrize(("pinned", "active"), [(False, True), (True, False)])
def test_any_other_workflow_gets_nothing_and_leaves_the_lock_free(
        db_session: Any, database_url: str, pinned: bool, active: bool) -> None:
    workflow_id = _workflow(db_session, pinned=pinned, active=active)
    assert insert_pinned_instance_locking_admission(db_session, workflow_id, _VALUES) is None
    assert insert_pinned_instance_locking_admission(db_session, uuid.uuid4(), _VALUES) is None
    # The general path pins a version under the workflow's row lock next; holding the
    # admission lock already would deadlock with a launch that holds that row.
    assert _admission_lock_is_free(database_url)
