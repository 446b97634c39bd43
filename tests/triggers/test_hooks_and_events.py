"""Webhooks (HMAC-signed or open) and events start instances, counted on their trigger."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.resources.hooks import signature_for
from models.instance import WorkflowInstance
from models.workflow import WorkflowTrigger
from tests.worker.helpers import lose_the_database_in

Headers = dict[str, str]
SECRET = "a-long-webhook-secret"


def _trigger(client: FlaskClient, editor: Headers, workflow_id: uuid.UUID,
             body: dict[str, Any]) -> str:
    response = client.post(f"/api/workflows/{workflow_id}/triggers", json=body, headers=editor)
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def _instances(factory: sessionmaker[Session], workflow_id: uuid.UUID) -> list[WorkflowInstance]:
    with factory() as session:
        return list(session.scalars(select(WorkflowInstance)
                                    .where(WorkflowInstance.workflow_id == workflow_id)))


def _trigger_row(factory: sessionmaker[Session], trigger_id: str) -> WorkflowTrigger:
    with factory() as session:
        row = session.get(WorkflowTrigger, uuid.UUID(trigger_id))
        assert row is not None
        return row


def test_signed_webhook_starts_an_instance_with_the_body_as_input(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., uuid.UUID],
    session_factory: sessionmaker[Session],
) -> None:
    workflow_id = api_workflow()
    trigger_id = _trigger(client, editor, workflow_id,
                          {"trigger_type": "webhook", "configuration": {"secret": SECRET}})
    body = json.dumps({"title": "CVE-2026-0001", "severity": 9}).encode()

    response = client.post(f"/api/hooks/{trigger_id}", data=body,
                           headers={"Content-Type": "application/json",
                                    "X-Flowyard-Signature": signature_for(SECRET, body)})

    assert response.status_code == 202, response.json
    (instance,) = _instances(session_factory, workflow_id)
    assert str(instance.id) == response.json["instance_id"]
    assert instance.execution_context == {"input": {"title": "CVE-2026-0001", "severity": 9}}
    assert instance.triggered_by == "webhook"
    assert instance.trigger_source == trigger_id
    trigger = _trigger_row(session_factory, trigger_id)
    assert trigger.trigger_count == 1 and trigger.last_triggered is not None


def test_unsigned_or_wrongly_signed_webhook_is_401_and_starts_nothing(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., uuid.UUID],
    session_factory: sessionmaker[Session],
) -> None:
    workflow_id = api_workflow()
    trigger_id = _trigger(client, editor, workflow_id,
                          {"trigger_type": "webhook", "configuration": {"secret": SECRET}})
    body = b'{"severity": 9}'
    attempts = [
        {},
        {"X-Flowyard-Signature": signature_for("another-secret-value", body)},
        {"X-Flowyard-Signature": signature_for(SECRET, b'{"severity": 1}')},
        {"X-Flowyard-Signature": signature_for(SECRET, body).removeprefix("sha256=")},
        {"X-Flowyard-Signature": "sha256=\u00e9\u00e9"},
    ]
    for headers in attempts:
        response = client.post(f"/api/hooks/{trigger_id}", data=body,
                               headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 401, headers
        assert response.json["error"]["code"] == "unauthorized"
    assert _instances(session_factory, workflow_id) == []
    assert _trigger_row(session_factory, trigger_id).trigger_count == 0


def test_open_webhook_needs_no_signature_and_bad_bodies_are_refused(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., uuid.UUID],
    session_factory: sessionmaker[Session],
) -> None:
    workflow_id = api_workflow()
    trigger_id = _trigger(client, editor, workflow_id, {"trigger_type": "webhook"})
    assert client.post(f"/api/hooks/{trigger_id}", data=b"{not json").status_code == 400
    assert client.post(f"/api/hooks/{trigger_id}", json=[1, 2]).status_code == 422
    assert client.post(f"/api/hooks/{trigger_id}", json={"a": 1}).status_code == 202
    assert client.post(f"/api/hooks/{trigger_id}").status_code == 202  # empty body: {}
    inputs = sorted(json.dumps(i.execution_context) for i in _instances(session_factory,
                                                                         workflow_id))
    assert inputs == ['{"input": {"a": 1}}', '{"input": {}}']


def test_inactive_trigger_or_workflow_does_not_fire(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., uuid.UUID],
    session_factory: sessionmaker[Session],
) -> None:
    quiet_workflow = api_workflow(is_active=False)
    on_quiet = _trigger(client, editor, quiet_workflow, {"trigger_type": "webhook"})
    live_workflow = api_workflow()
    quiet = _trigger(client, editor, live_workflow,
                     {"trigger_type": "webhook", "is_active": False})
    assert client.post(f"/api/hooks/{on_quiet}", json={}).status_code == 409
    assert client.post(f"/api/hooks/{quiet}", json={}).status_code == 409
    assert _instances(session_factory, quiet_workflow) == []
    assert _instances(session_factory, live_workflow) == []
    manual = _trigger(client, editor, live_workflow, {"trigger_type": "manual"})
    assert client.post(f"/api/hooks/{manual}", json={}).status_code == 404
    assert client.post(f"/api/hooks/{uuid.uuid4()}", json={}).status_code == 404


def test_event_starts_only_matching_active_workflows(
    client: FlaskClient, editor: Headers, operator: Headers, viewer: Headers,
    api_workflow: Callable[..., uuid.UUID], session_factory: sessionmaker[Session],
) -> None:
    def event_trigger(workflow_id: uuid.UUID, active: bool = True, **config: Any) -> str:
        return _trigger(client, editor, workflow_id, {
            "trigger_type": "event", "is_active": active,
            "configuration": {"source": "gitlab", "type": "push", **config}})

    plain = api_workflow(name="any push")
    filtered = api_workflow(name="main only")
    other_type = api_workflow(name="merge requests")
    inactive_trigger = api_workflow(name="inactive trigger")
    inactive_workflow = api_workflow(name="inactive workflow", is_active=False)
    broken = api_workflow(name="broken filter")
    plain_trigger = event_trigger(plain)
    event_trigger(filtered, filter="payload.ref == 'refs/heads/main'")
    _trigger(client, editor, other_type, {"trigger_type": "event", "configuration": {
        "source": "gitlab", "type": "merge_request"}})
    event_trigger(inactive_trigger, active=False)
    event_trigger(inactive_workflow)
    broken_trigger = event_trigger(broken, filter="payload.missing_key == 1")

    event = {"source": "gitlab", "type": "push", "payload": {"ref": "refs/heads/dev"}}
    assert client.post("/api/events", json=event, headers=viewer).status_code == 403
    response = client.post("/api/events", json=event, headers=operator)

    assert response.status_code == 202, response.json
    assert [item["workflow_id"] for item in response.json["started"]] == [str(plain)]
    assert [item["trigger_id"] for item in response.json["errors"]] == [broken_trigger]
    started = _instances(session_factory, plain)
    assert len(started) == 1
    assert started[0].execution_context == {"input": {"ref": "refs/heads/dev"}}
    assert started[0].triggered_by == "event" and started[0].trigger_source == plain_trigger
    for workflow_id in (filtered, other_type, inactive_trigger, inactive_workflow, broken):
        assert _instances(session_factory, workflow_id) == []

    main = {"source": "gitlab", "type": "push", "payload": {"ref": "refs/heads/main"}}
    response = client.post("/api/events", json=main, headers=operator)
    assert sorted(item["workflow_id"] for item in response.json["started"]) == sorted(
        [str(plain), str(filtered)])
    assert _trigger_row(session_factory, plain_trigger).trigger_count == 2


def test_a_firing_whose_admission_fails_after_its_commit_is_still_accepted(
    client: FlaskClient, editor: Headers, operator: Headers,
    api_workflow: Callable[..., uuid.UUID], session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Committed, the firing has succeeded: a database failure in the admission pass that
    follows answers 202 (a 500 would have a webhook's sender fire it again), and the
    instance waits pending for the reconciler's pass."""
    from api import trigger_launch

    lose_the_database_in(monkeypatch, trigger_launch, ["admit_and_dispatch"])
    caplog.set_level("WARNING", logger="api.after_commit")
    hooked = api_workflow(name="hooked")
    trigger_id = _trigger(client, editor, hooked, {"trigger_type": "webhook"})
    fired = client.post(f"/api/hooks/{trigger_id}", json={"n": 1})
    evented = api_workflow(name="evented")
    _trigger(client, editor, evented, {"trigger_type": "event",
                                       "configuration": {"source": "ci", "type": "done"}})
    event = client.post("/api/events", json={"source": "ci", "type": "done", "payload": {}},
                        headers=operator)

    assert fired.status_code == 202, fired.json
    assert event.status_code == 202, event.json
    (hooked_instance,) = _instances(session_factory, hooked)
    (evented_instance,) = _instances(session_factory, evented)
    assert str(hooked_instance.id) == fired.json["instance_id"]
    assert [item["instance_id"] for item in event.json["started"]] == [
        str(evented_instance.id)]
    assert hooked_instance.status == evented_instance.status == "pending"
    assert f"launch of instance {hooked_instance.id} committed, then the database failed" in (
        caplog.text)
    assert (f"launch of instances {evented_instance.id} committed, then the database failed"
            in caplog.text)


def test_event_body_is_checked(client: FlaskClient, operator: Headers) -> None:
    assert client.post("/api/events", json={"source": "x"}, headers=operator).status_code == 422
    body = {"source": "x", "type": "y", "payload": {}, "extra": 1}
    assert client.post("/api/events", json=body, headers=operator).status_code == 422
