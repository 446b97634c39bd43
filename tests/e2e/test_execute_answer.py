"""POST /execute answers with the instance as stored right after its admission.

No workers run in this module, so each instance stays where admission left it and the
answer can be compared with a later GET field by field. When the execute fast path starts
the instance, the answer is built from what the start returned instead of a re-read; these
tests hold it to what the database says, on that path and on the two that re-read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from tests.cli.processes import free_port
from tests.e2e.helpers import edge, instance_row, make_workflow, node, steps
from tests.worker.helpers import lose_the_database_in, refuse_calls

SHOWN = ("status", "started_at", "deadline_at", "paused_at", "updated_at", "progress",
         "current_step", "completed_at")


@pytest.fixture
def made(runtime: Any) -> Iterator[list[uuid.UUID]]:
    """Workflows a test creates; deleted after it with their instances, so no instance of
    theirs holds an admission slot (nothing runs them) for later modules."""
    from models.workflow import Workflow

    workflows: list[uuid.UUID] = []
    yield workflows
    with runtime.session_factory() as session:
        session.execute(delete(Workflow).where(Workflow.id.in_(workflows)))
        session.commit()


@pytest.fixture
def api_for(runtime: Any) -> Iterator[Any]:
    """A test client of an app with the given settings (and Celery app, if not the
    runtime's), and an operator's headers."""
    from api.app import create_app
    from api.auth import issue_token
    from models.security import ApiToken, AuditLogEntry

    name = f"answer-{uuid.uuid4().hex[:6]}"
    with runtime.session_factory() as session:
        _, token = issue_token(session, name=name, roles=["operator"])
        session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    def make(settings: Any, celery_app: Any = None) -> tuple[Any, dict[str, str]]:
        app = create_app(settings, session_factory=runtime.session_factory,
                         celery_app=celery_app or runtime.celery)
        return app.test_client(), headers

    yield make
    with runtime.session_factory() as session:
        session.execute(delete(AuditLogEntry).where(AuditLogEntry.actor == name))
        session.execute(delete(ApiToken).where(ApiToken.name == name))
        session.commit()


def _execute_and_read(client: Any, headers: dict[str, str],
                      workflow_id: uuid.UUID) -> tuple[dict[str, Any], dict[str, Any]]:
    answer = client.post(f"/api/workflows/{workflow_id}/execute", json={}, headers=headers)
    assert answer.status_code == 202, answer.json
    stored = client.get(f"/api/workflow-instances/{answer.json['id']}", headers=headers)
    return answer.json, stored.json


def _shown(instance: dict[str, Any]) -> dict[str, Any]:
    return {key: instance[key] for key in SHOWN}


def _chain(runtime: Any, made: list[uuid.UUID], first_enabled: bool = True) -> uuid.UUID:
    workflow_id = make_workflow(runtime, [node("a", "noop", enabled=first_enabled),
                                          node("b", "noop")], [edge("a", "b")])
    made.append(workflow_id)
    return workflow_id


# The first launch pins a version (the general path); later ones start in one round trip.
LAUNCHES = pytest.mark.parametrize("launch", ["first", "later"])


def _execute_again_and_read(client: Any, headers: dict[str, str], workflow_id: uuid.UUID,
                            launch: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if launch == "later":
        _execute_and_read(client, headers, workflow_id)
    return _execute_and_read(client, headers, workflow_id)


@LAUNCHES
def test_a_started_instance_is_answered_as_stored(e2e_settings: Any, runtime: Any,
                                                  api_for: Any, made: Any, launch: str) -> None:
    client, headers = api_for(e2e_settings)
    answer, stored = _execute_again_and_read(client, headers, _chain(runtime, made), launch)
    assert answer["status"] == "running"
    assert answer["started_at"] is not None and answer["deadline_at"] is not None
    assert _shown(answer) == _shown(stored)
    assert answer == stored


@LAUNCHES
def test_progress_decided_at_the_start_is_in_the_answer(e2e_settings: Any, runtime: Any,
                                                        api_for: Any, made: Any,
                                                        launch: str) -> None:
    client, headers = api_for(e2e_settings)
    # A disabled entry node passes through at once: the start itself moves the progress.
    answer, stored = _execute_again_and_read(
        client, headers, _chain(runtime, made, first_enabled=False), launch)
    assert answer["status"] == "running" and answer["progress"] == 50
    assert _shown(answer) == _shown(stored)


def test_an_instance_left_waiting_is_answered_pending(e2e_settings: Any, runtime: Any,
                                                     api_for: Any, made: Any) -> None:
    from models.instance import WorkflowInstance

    with runtime.session_factory() as session:
        running = session.scalar(select(func.count()).select_from(WorkflowInstance)
                                 .where(WorkflowInstance.status == "running"))
    # Room for exactly one more instance than runs now.
    client, headers = api_for(e2e_settings.replace(max_concurrent_workflows=running + 1))
    workflow_id = _chain(runtime, made)
    first, _ = _execute_and_read(client, headers, workflow_id)
    second, stored = _execute_and_read(client, headers, workflow_id)
    assert first["status"] == "running"
    assert second["status"] == "pending" and second["deadline_at"] is None
    assert _shown(second) == _shown(stored)


def test_a_workflow_that_ran_before_starts_without_reading_it(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any, monkeypatch: Any) -> None:
    from api.resources import instances as endpoint
    from models.workflow import Workflow

    client, headers = api_for(e2e_settings)
    workflow_id = _chain(runtime, made)
    first, _ = _execute_and_read(client, headers, workflow_id)  # pins the first version
    refuse_calls(monkeypatch, endpoint, ["_create_instance"],
                 "a pinned, active workflow must start on the one-round-trip path")
    answer = client.post(f"/api/workflows/{workflow_id}/execute",
                         json={"input": {"ticket": 7}, "priority": "high"}, headers=headers)
    assert answer.status_code == 202, answer.json
    stored = client.get(f"/api/workflow-instances/{answer.json['id']}", headers=headers).json
    assert _shown(answer.json) == _shown(stored)
    assert answer.json["status"] == "running"
    row = instance_row(runtime, uuid.UUID(answer.json["id"]))
    assert (row.workflow_version_id, row.priority, row.execution_context,
            row.triggered_by, row.trigger_source) == (
        instance_row(runtime, uuid.UUID(first["id"])).workflow_version_id, "high",
        {"input": {"ticket": 7}}, "manual", "api")
    # Deactivated: that path creates nothing, and the general one answers why.
    monkeypatch.undo()
    with runtime.session_factory() as session:
        session.get(Workflow, workflow_id).is_active = False
        session.commit()
    refused = client.post(f"/api/workflows/{workflow_id}/execute", json={}, headers=headers)
    assert refused.status_code == 409, refused.json
    listed = client.get(f"/api/workflow-instances?workflow_id={workflow_id}",
                        headers=headers).json
    assert listed["total"] == 2


def test_a_saved_workflow_starts_its_new_version_on_the_next_call(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any, monkeypatch: Any) -> None:
    """The process remembers each workflow's pinned version; a save pins a new one
    without telling it, and the launch's own check catches that."""
    from api.resources import instances as endpoint
    from api.workflow_store import update_workflow
    from models.workflow import Workflow
    from worker import direct_launch

    client, headers = api_for(e2e_settings)
    workflow_id = _chain(runtime, made)
    _execute_and_read(client, headers, workflow_id)  # the general path pins a version
    first, _ = _execute_and_read(client, headers, workflow_id)  # this path remembers it
    refuse_calls(monkeypatch, direct_launch, ["pinned_version_of"],
                 "a remembered pinned version must not be read again")
    remembered, _ = _execute_and_read(client, headers, workflow_id)
    monkeypatch.undo()
    with runtime.session_factory() as session:
        workflow = session.get(Workflow, workflow_id, with_for_update=True)
        update_workflow(session, workflow, {"workflow_data": {
            "nodes": [node("only", "noop")], "edges": []}}, "editor")
        session.commit()
        saved_version = workflow.current_version_id

    after_save, _ = _execute_and_read(client, headers, workflow_id)  # refused, re-read
    refuse_calls(monkeypatch, endpoint, ["_create_instance"],
                 "once re-read, the new version must start on the one-round-trip path")
    again, _ = _execute_and_read(client, headers, workflow_id)

    def version(answer: dict[str, Any]) -> uuid.UUID:
        return instance_row(runtime, uuid.UUID(answer["id"])).workflow_version_id
    assert version(remembered) == version(first) != saved_version
    assert version(after_save) == version(again) == saved_version
    listed = client.get(f"/api/workflow-instances?workflow_id={workflow_id}",
                        headers=headers).json
    assert listed["total"] == 5  # the refused fast path wrote nothing


def test_an_unknown_workflow_is_not_found_and_nothing_is_created(
        e2e_settings: Any, api_for: Any) -> None:
    client, headers = api_for(e2e_settings)
    answer = client.post(f"/api/workflows/{uuid.uuid4()}/execute", json={}, headers=headers)
    assert answer.status_code == 404, answer.json


@LAUNCHES
def test_an_instance_its_first_plan_ends_is_answered_ended(e2e_settings: Any, runtime: Any,
                                                           api_for: Any, made: Any,
                                                           launch: str) -> None:
    client, headers = api_for(e2e_settings)
    # Its only node is disabled: it passes through, and the instance completes as it starts.
    workflow_id = make_workflow(runtime, [node("a", "noop", enabled=False)], [])
    made.append(workflow_id)
    answer, stored = _execute_again_and_read(client, headers, workflow_id, launch)
    assert answer["status"] == "completed" and answer["progress"] == 100
    assert answer == stored


def test_a_launch_s_audit_row_is_written_once_on_either_path(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any) -> None:
    """The one-round-trip path writes the call's audit row in its own transaction; the
    general path, and a call that fails after that path wrote nothing, write it after."""
    from models.security import AuditLogEntry
    from models.workflow import Workflow

    client, headers = api_for(e2e_settings)
    workflow_id = _chain(runtime, made)

    def execute(request_id: str) -> Any:
        return client.post(f"/api/workflows/{workflow_id}/execute", json={},
                           headers={**headers, "X-Request-ID": request_id})

    def audited(request_id: str) -> list[Any]:
        with runtime.session_factory() as session:
            return list(session.scalars(select(AuditLogEntry)
                                        .where(AuditLogEntry.request_id == request_id)))

    tag = uuid.uuid4().hex[:8]
    general, direct = execute(f"general-{tag}"), execute(f"direct-{tag}")
    with runtime.session_factory() as session:
        session.get(Workflow, workflow_id).is_active = False
        session.commit()
    refused = execute(f"refused-{tag}")  # the direct path wrote nothing: no such instance
    assert (general.status_code, direct.status_code, refused.status_code) == (202, 202, 409)

    (general_row,) = audited(f"general-{tag}")
    (direct_row,) = audited(f"direct-{tag}")
    (refused_row,) = audited(f"refused-{tag}")
    assert (direct_row.resource_type, direct_row.resource_id) == (
        "workflow-instances", direct.json["id"])
    assert general_row.resource_id == general.json["id"]

    def described(row: Any) -> tuple[Any, ...]:
        return (row.actor, row.action, row.outcome, row.status_code, row.client_address,
                row.details)
    assert described(direct_row) == described(general_row)
    assert direct_row.details == {"workflow_id": str(workflow_id), "created": True}
    assert direct_row.actor is not None and direct_row.outcome == "success"
    assert (refused_row.outcome, refused_row.status_code, refused_row.resource_type,
            refused_row.resource_id, refused_row.details) == (
        "failure", 409, "workflows", str(workflow_id), None)


@LAUNCHES
def test_a_launch_the_broker_cannot_take_is_accepted_and_sent_later(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any, launch: str) -> None:
    """The instance and its first step are committed before the send: with the broker
    down, the call still answers 202 (a 500 would have the client start it twice), the
    audit row says what the call did, and the reconciler sends the step later."""
    import redis

    from models.instance import WorkflowExecution
    from models.security import AuditLogEntry
    from worker.celery_app import make_celery
    from worker.reconciler import redispatch_unclaimed

    # Nothing listens there: a port just taken and given back, on loopback.
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    client, headers = api_for(e2e_settings, make_celery(e2e_settings.replace(
        broker_url=unreachable)))
    # "later": the first call takes the general path and the second the one-round-trip one;
    # both meet the unreachable broker.
    answer, stored = _execute_again_and_read(client, headers, _chain(runtime, made), launch)
    assert answer["status"] == "running"
    assert _shown(answer) == _shown(stored)
    instance_id = uuid.UUID(answer["id"])
    first = steps(runtime, instance_id)["a"]
    assert first.status == "pending"
    with runtime.session_factory() as session:
        audited = session.execute(select(AuditLogEntry.outcome, AuditLogEntry.status_code)
                                  .where(AuditLogEntry.resource_id == str(instance_id))).all()
        assert [tuple(row) for row in audited] == [("success", 202)]
        # As if two step leases had passed since the send that failed.
        session.execute(update(WorkflowExecution).where(WorkflowExecution.id == first.id)
                        .values(dispatched_at=func.now() - timedelta(hours=1)))
        session.commit()
    queue = redis.Redis.from_url(e2e_settings.celery_broker_url)

    def messages_for_the_step() -> int:
        return sum(str(first.id).encode() in message for message in queue.lrange("noop", 0, -1))

    assert messages_for_the_step() == 0
    assert redispatch_unclaimed(runtime) >= 1
    assert messages_for_the_step() == 1, "the reconciler did not send the step"


def test_a_cancel_whose_admission_pass_fails_after_its_commit_still_answers_cancelled(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any, monkeypatch: Any,
        caplog: Any) -> None:
    from worker import admission

    client, headers = api_for(e2e_settings)
    started, _ = _execute_and_read(client, headers, _chain(runtime, made))
    lose_the_database_in(monkeypatch, admission, ["admit_and_dispatch"])
    caplog.set_level("WARNING", logger="api.after_commit")
    cancelled = client.post(f"/api/workflow-instances/{started['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert instance_row(runtime, uuid.UUID(started["id"])).status == "cancelled"
    assert f"cancel of instance {started['id']} committed, then the database failed" in (
        caplog.text)


def test_a_cancel_the_broker_cannot_revoke_still_answers_cancelled(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any) -> None:
    """The revoke only stops work early: the cancel is committed, and a step that runs on
    finds its result refused when it ends."""
    from models.instance import WorkflowExecution
    from worker.celery_app import make_celery

    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    client, headers = api_for(e2e_settings, make_celery(e2e_settings.replace(
        broker_url=unreachable)))
    started, _ = _execute_and_read(client, headers, _chain(runtime, made))
    instance_id = uuid.UUID(started["id"])
    first = steps(runtime, instance_id)["a"]
    with runtime.session_factory() as session:  # as if a worker had claimed it
        session.execute(update(WorkflowExecution).where(WorkflowExecution.id == first.id)
                        .values(status="running", attempt=1, celery_task_id=str(uuid.uuid4()),
                                started_at=func.now(), heartbeat_at=func.now()))
        session.commit()
    cancelled = client.post(f"/api/workflow-instances/{instance_id}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert steps(runtime, instance_id)["a"].status == "failed"


@LAUNCHES
def test_a_launch_whose_database_fails_after_its_commit_is_accepted_and_admitted_later(
        e2e_settings: Any, runtime: Any, api_for: Any, made: Any, launch: str,
        monkeypatch: Any, caplog: Any) -> None:
    """Committed, the call has succeeded: a database failure in what follows (here the
    admission pass of an instance that found no room) answers 202 with the instance as
    committed, not 500, which would have the client start it twice. The instance waits
    pending, and the next admission pass starts it."""
    from models.instance import WorkflowInstance
    from models.security import AuditLogEntry
    from worker import admission, direct_launch

    with runtime.session_factory() as session:
        running = session.scalar(select(func.count()).select_from(WorkflowInstance)
                                 .where(WorkflowInstance.status == "running"))
    # No room: the instance is left pending, and an admission pass follows the commit.
    client, headers = api_for(e2e_settings.replace(max_concurrent_workflows=running))
    workflow_id = _chain(runtime, made)
    if launch == "later":
        _execute_and_read(client, headers, workflow_id)  # pins the version
    lose_the_database_in(monkeypatch, admission, ["admit_and_dispatch"])
    lose_the_database_in(monkeypatch, direct_launch, ["admit_and_dispatch"])
    caplog.set_level("WARNING", logger="api.after_commit")
    answer = client.post(f"/api/workflows/{workflow_id}/execute", json={}, headers=headers)
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "pending"
    instance_id = uuid.UUID(answer.json["id"])
    assert f"launch of instance {instance_id} committed, then the database failed" in (
        caplog.text)
    assert instance_row(runtime, instance_id).status == "pending"
    with runtime.session_factory() as session:
        audited = session.execute(select(AuditLogEntry.outcome, AuditLogEntry.status_code)
                                  .where(AuditLogEntry.resource_id == str(instance_id))).all()
    assert [tuple(row) for row in audited] == [("success", 202)]
    monkeypatch.undo()
    admission.admit_and_dispatch(runtime)  # the reconciler's pass, with the room it has
    assert instance_row(runtime, instance_id).status == "running"
