"""The launch sent whole (`models.launches`): insert, admission lock, start and first steps."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, delete

from models.db import autocommit
from models.instances import ADMISSION_LOCK_KEY
from models.launches import insert_and_start, pinned_version_of
from models.security import AUDIT_ENTRY_COLUMNS
from models.steps import NewStep
from models.workflow import Workflow, WorkflowVersion

_VALUES = {"priority": "high", "execution_context": {"input": {"n": 1}},
           "triggered_by": "manual", "trigger_source": "api"}
_DOCUMENT = {"nodes": [{"id": "a", "type": "noop", "position": {"x": 0, "y": 0},
                        "data": {}}], "edges": []}
_FIRST_STEPS = [NewStep("a", "noop", "pending", 0)]
_NO_LIMIT = 1_000_000


@pytest.fixture
def workflows(db_engine: Engine) -> Iterator[list[uuid.UUID]]:
    """Committed workflows a test makes (an autocommit connection sees only those);
    deleted after it with their instances and steps."""
    made: list[uuid.UUID] = []
    yield made
    with db_engine.begin() as connection:
        connection.execute(delete(Workflow).where(Workflow.id.in_(made)))


def _workflow(db_engine: Engine, made: list[uuid.UUID], *, pinned: bool = True,
              active: bool = True) -> tuple[uuid.UUID, uuid.UUID | None]:
    from sqlalchemy.orm import Session

    with Session(db_engine) as session, session.begin():
        workflow = Workflow(name=f"launch-{uuid.uuid4().hex[:8]}", workflow_data=_DOCUMENT,
                            configuration={}, is_active=active)
        session.add(workflow)
        session.flush()
        made.append(workflow.id)
        if pinned:
            version = WorkflowVersion(workflow_id=workflow.id, revision=1, version="1.0.0",
                                      workflow_data=_DOCUMENT, configuration={})
            session.add(version)
            session.flush()
            workflow.current_version_id = version.id
        return workflow.id, workflow.current_version_id


def _launch(connection: Any, workflow_id: uuid.UUID, version_id: uuid.UUID, *,
            max_running: int = _NO_LIMIT, progress: int | None = 50,
            audit_entry: dict[str, Any] | None = None) -> Any:
    return insert_and_start(connection, instance_id=uuid.uuid4(), workflow_id=workflow_id,
                            version_id=version_id, values=_VALUES, timeout_seconds=60,
                            max_running=max_running, first_steps=_FIRST_STEPS,
                            progress=progress, audit_entry=audit_entry)


def _stored(database_url: str, instance_id: uuid.UUID) -> tuple[Any, list[Any]]:
    """The instance and its steps, as another connection sees them (committed only)."""
    with psycopg.connect(database_url, autocommit=True) as other:
        instance = other.execute(
            "SELECT status, progress, priority, execution_context, started_at, deadline_at"
            " FROM workflow_instances WHERE id = %s", (instance_id,)).fetchone()
        steps = other.execute(
            "SELECT id, node_id, status FROM workflow_executions WHERE instance_id = %s",
            (instance_id,)).fetchall()
    return instance, steps


def test_an_instance_with_room_is_started_with_its_first_steps_and_committed(
        db_engine: Engine, database_url: str, workflows: list[uuid.UUID]) -> None:
    workflow_id, version_id = _workflow(db_engine, workflows)
    assert version_id is not None
    with autocommit(db_engine) as connection:
        assert pinned_version_of(connection, workflow_id) == version_id
        launched = _launch(connection, workflow_id, version_id)
    assert launched is not None and launched.started is not None
    instance = launched.instance
    assert (instance.workflow_id, instance.workflow_version_id, instance.status,
            instance.priority, instance.triggered_by) == (
        workflow_id, version_id, "pending", "high", "manual")  # as inserted
    assert launched.started.row.status == "running" and launched.started.row.progress == 50
    assert (launched.started.deadline_at - launched.started.started_at).total_seconds() == 60
    stored, steps = _stored(database_url, instance.id)
    assert stored[:4] == ("running", 50, "high", {"input": {"n": 1}})
    assert stored[4] == launched.started.started_at
    assert [(step[0], step[1], step[2]) for step in steps] == [
        (launched.step_ids["a"], "a", "pending")]
    # Committed: nothing, the admission lock included, outlives the call.
    with psycopg.connect(database_url, autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_xact_lock(%s)",
                             (ADMISSION_LOCK_KEY,)).fetchone() == (True,)


def test_without_room_it_waits_pending_with_no_steps(
        db_engine: Engine, database_url: str, workflows: list[uuid.UUID]) -> None:
    workflow_id, version_id = _workflow(db_engine, workflows)
    assert version_id is not None
    with autocommit(db_engine) as connection:
        launched = _launch(connection, workflow_id, version_id, max_running=0)
    assert launched is not None and launched.started is None and launched.step_ids == {}
    stored, steps = _stored(database_url, launched.instance.id)
    assert (stored[0], stored[1], stored[5], steps) == ("pending", 0, None, [])


@pytest.mark.parametrize(("pinned", "active"), [(False, True), (True, False)])
def test_a_workflow_that_cannot_start_this_way_gets_nothing(
        db_engine: Engine, workflows: list[uuid.UUID], pinned: bool, active: bool) -> None:
    workflow_id, version_id = _workflow(db_engine, workflows, pinned=pinned, active=active)
    with autocommit(db_engine) as connection:
        assert pinned_version_of(connection, workflow_id) is None
        assert pinned_version_of(connection, uuid.uuid4()) is None
        if version_id is not None:  # inactive since its version was read
            assert _launch(connection, workflow_id, version_id) is None
        assert _count_instances(connection, workflow_id) == 0


def test_a_version_no_longer_pinned_gets_nothing(
        db_engine: Engine, workflows: list[uuid.UUID]) -> None:
    workflow_id, version_id = _workflow(db_engine, workflows)
    with autocommit(db_engine) as connection:
        assert _launch(connection, workflow_id, uuid.uuid4()) is None
        assert _count_instances(connection, workflow_id) == 0
        assert version_id is not None and _launch(connection, workflow_id, version_id)


def test_an_audit_entry_is_written_with_the_instance_and_only_with_it(
        db_engine: Engine, database_url: str, workflows: list[uuid.UUID]) -> None:
    workflow_id, version_id = _workflow(db_engine, workflows)
    assert version_id is not None
    request_id = uuid.uuid4().hex
    entry = {"actor": "launcher", "action": "POST /api/workflows/<uuid:workflow_id>/execute",
             "resource_type": "workflow-instances", "resource_id": "named by the caller",
             "outcome": "success", "status_code": 202, "request_id": request_id,
             "client_address": "127.0.0.1", "details": {"created": True}}
    with autocommit(db_engine) as connection:
        launched = _launch(connection, workflow_id, version_id, audit_entry=entry)
        refused = _launch(connection, workflow_id, uuid.uuid4(), audit_entry=entry)
    assert launched is not None and refused is None
    with psycopg.connect(database_url, autocommit=True) as other:
        rows = other.execute(f"SELECT {', '.join(AUDIT_ENTRY_COLUMNS)} FROM audit_log"
                             " WHERE request_id = %s", (request_id,)).fetchall()
        other.execute("DELETE FROM audit_log WHERE request_id = %s", (request_id,))
    assert [dict(zip(AUDIT_ENTRY_COLUMNS, row, strict=True)) for row in rows] == [entry]


def test_a_launch_waiting_for_the_workflow_row_does_not_hold_the_admission_lock(
        db_engine: Engine, database_url: str, workflows: list[uuid.UUID]) -> None:
    """Pinning a first version locks the workflow's row, then the admission lock. The
    insert waits for that row (its foreign key); holding the admission lock while it
    waits would deadlock with such a launch."""
    workflow_id, version_id = _workflow(db_engine, workflows)
    assert version_id is not None
    results: list[Any] = []
    with psycopg.connect(database_url) as pinning:
        pinning.execute("SELECT 1 FROM workflows WHERE id = %s FOR UPDATE", (workflow_id,))

        def launch() -> None:
            with autocommit(db_engine) as connection:
                results.append(_launch(connection, workflow_id, version_id))

        launcher = threading.Thread(target=launch)
        launcher.start()
        _wait_until_blocked(database_url, workflow_id)
        # PostgreSQL would end one of the two with a deadlock error here (after
        # deadlock_timeout) if the launch held the lock.
        pinning.execute("SET LOCAL lock_timeout = '5s'")
        pinning.execute("SELECT pg_advisory_xact_lock(%s)", (ADMISSION_LOCK_KEY,))
        pinning.commit()
        launcher.join(timeout=30)
    assert len(results) == 1 and results[0] is not None and results[0].started is not None


def _wait_until_blocked(database_url: str, workflow_id: uuid.UUID) -> None:
    """Until a backend waits for a lock on the workflow's row (the launch's insert)."""
    with psycopg.connect(database_url, autocommit=True) as observer:
        for _ in range(500):
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%%INSERT INTO workflow_instances%%'").fetchone()
            if row is not None and row[0] > 0:
                return
            threading.Event().wait(0.01)
    raise AssertionError(f"the launch of {workflow_id} never waited for the workflow's row")


def _count_instances(connection: Any, workflow_id: uuid.UUID) -> int:
    from sqlalchemy import text

    return int(connection.execute(
        text("SELECT count(*) FROM workflow_instances WHERE workflow_id = :id"),
        {"id": workflow_id}).scalar_one())
