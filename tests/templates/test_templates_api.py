"""The built-in library, template listing and instantiation, portable export and import."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.app import default_node_types
from api.library import load_library
from api.portable import FORMAT
from api.templates_seed import seed_builtin_templates
from engine.validation import validate_workflow
from models.workflow import Workflow, WorkflowTrigger

Headers = dict[str, str]
REQUIRED_LIBRARY = {"vulnerability_triage", "approval_chain", "incident_fanout",
                    "scheduled_report"}


def _seed(app: Flask, factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        inserted = seed_builtin_templates(session, settings=app.extensions["flowyard"].settings,
                                          node_types=default_node_types())
        session.commit()
        return inserted


def _template_id(client: FlaskClient, headers: Headers, name: str) -> str:
    listed = client.get("/api/templates?limit=500", headers=headers).json["items"]
    return next(item["id"] for item in listed if item["name"] == name)


@pytest.mark.parametrize("template", load_library(), ids=lambda t: t.key)
def test_every_library_template_is_a_valid_portable_document(template: Any) -> None:
    document = template.document
    assert document["format"] == FORMAT and document["is_template"] is True
    assert validate_workflow(document["workflow_data"], default_node_types(),
                             configuration=document["configuration"]) == []
    # A template never fires by itself: its triggers are installed inactive.
    assert all(trigger["is_active"] is False for trigger in document["triggers"])


def test_the_library_has_the_required_templates() -> None:
    assert REQUIRED_LIBRARY <= {template.key for template in load_library()}


def test_seeding_installs_each_template_once_and_lists_by_category(
    app: Flask, client: FlaskClient, viewer: Headers, session_factory: sessionmaker[Session],
) -> None:
    _seed(app, session_factory)  # a no-op where an earlier test already installed them
    with session_factory() as session:
        keys = list(session.scalars(select(Workflow.builtin_key)
                                    .where(Workflow.builtin_key.is_not(None))))
    assert sorted(keys) == sorted(template.key for template in load_library())
    assert _seed(app, session_factory) == []
    first = keys

    security = client.get("/api/templates?category=security", headers=viewer)
    assert security.status_code == 200
    assert [item["name"] for item in security.json["items"]] == ["Vulnerability triage"]
    everything = client.get("/api/templates", headers=viewer).json
    assert everything["total"] == len(first)
    assert all(item["is_template"] for item in everything["items"])


def test_instantiate_copies_the_template_as_an_active_workflow(
    app: Flask, client: FlaskClient, editor: Headers, viewer: Headers,
    session_factory: sessionmaker[Session],
) -> None:
    _seed(app, session_factory)
    template_id = _template_id(client, viewer, "Scheduled report")
    template = client.get(f"/api/workflows/{template_id}", headers=viewer).json

    response = client.post(f"/api/templates/{template_id}/instantiate",
                           json={"name": "Ops weekly report"}, headers=editor)

    assert response.status_code == 201, response.json
    created = response.json
    assert created["id"] != template_id
    assert created["name"] == "Ops weekly report"
    assert created["is_template"] is False and created["is_active"] is True
    assert created["workflow_data"] == template["workflow_data"]
    assert created["category"] == "reporting"
    triggers = client.get(f"/api/workflows/{created['id']}/triggers", headers=viewer).json
    assert [(t["trigger_type"], t["is_active"]) for t in triggers["items"]] == [
        ("schedule", False)]
    assert client.post(f"/api/templates/{created['id']}/instantiate", json={"name": "x"},
                       headers=editor).status_code == 404
    assert client.post(f"/api/templates/{template_id}/instantiate", json={},
                       headers=editor).status_code == 422


def _workflow_with_secrets(client: FlaskClient, editor: Headers) -> dict[str, Any]:
    body = {
        "name": "Signed notifier", "category": "ops", "tags": ["ops"],
        "configuration": {"max_retries": 1},
        "workflow_data": {
            "nodes": [
                {"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                 "data": {"label": "Start"}},
                {"id": "hook", "type": "notification", "position": {"x": 200, "y": 0},
                 "data": {"label": "Hook", "config": {
                     "channel": "webhook", "recipients": ["https://example.invalid/h"],
                     "message": "hello {{ input.who }}", "secret": "plain-signing-secret"}}},
                {"id": "shape", "type": "transform", "position": {"x": 200, "y": 100},
                 "data": {"label": "Shape", "config": {
                     "output": {"who": "{{ input.who }}"}}}},
            ],
            "edges": [{"id": "e1", "source": "start", "target": "hook"},
                      {"id": "e2", "source": "start", "target": "shape"}],
        },
    }
    created = client.post("/api/workflows", json=body, headers=editor)
    assert created.status_code == 201, created.json
    workflow = created.json
    for trigger in ({"trigger_type": "webhook",
                     "configuration": {"secret": "webhook-secret-value"}},
                    {"trigger_type": "event", "configuration": {"source": "s", "type": "t"}}):
        response = client.post(f"/api/workflows/{workflow['id']}/triggers", json=trigger,
                               headers=editor)
        assert response.status_code == 201
    return workflow


def test_export_has_no_ids_timestamps_or_secret_values(
    client: FlaskClient, editor: Headers, viewer: Headers,
) -> None:
    workflow = _workflow_with_secrets(client, editor)

    response = client.get(f"/api/workflows/{workflow['id']}/export", headers=viewer)

    assert response.status_code == 200
    document = response.json
    text = response.get_data(as_text=True)
    assert document["format"] == "flowyard.workflow/v1"
    for leaked in (workflow["id"], "plain-signing-secret", "webhook-secret-value",
                   workflow["created_at"], "created_by", "updated_at"):
        assert leaked not in text
    assert document["revision"] == 1 and document["version"] == workflow["version"]
    hook = document["workflow_data"]["nodes"][1]["data"]["config"]
    assert "secret" not in hook and hook["message"] == "hello {{ input.who }}"
    assert document["triggers"] == [
        {"trigger_type": "webhook", "trigger_source": None, "configuration": {},
         "is_active": False},
        {"trigger_type": "event", "trigger_source": None,
         "configuration": {"source": "s", "type": "t"}, "is_active": True},
    ]


def test_export_then_import_gives_the_same_definition(
    client: FlaskClient, editor: Headers, viewer: Headers,
    session_factory: sessionmaker[Session],
) -> None:
    workflow = _workflow_with_secrets(client, editor)
    document = client.get(f"/api/workflows/{workflow['id']}/export", headers=viewer).json

    imported = client.post("/api/workflows/import", json=document, headers=editor)

    assert imported.status_code == 201, imported.json
    assert imported.json["id"] != workflow["id"]
    again = client.get(f"/api/workflows/{imported.json['id']}/export", headers=viewer).json
    assert again == document
    with session_factory() as session:
        triggers = list(session.scalars(select(WorkflowTrigger).where(
            WorkflowTrigger.workflow_id == imported.json["id"])))
    assert sorted((t.trigger_type, t.is_active) for t in triggers) == [
        ("event", True), ("webhook", False)]
    assert all("secret" not in (t.configuration or {}) for t in triggers)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(format="flowyard.workflow/v2"), "format"),
        (lambda d: d.pop("format"), "format"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d["workflow_data"]["nodes"].append(
            {"id": "x", "type": "no-such-type", "position": {"x": 0, "y": 0},
             "data": {"label": "x"}}), "problems"),
        (lambda d: d["triggers"].append(
            {"trigger_type": "schedule", "configuration": {"cron": "bad"}}), "configuration"),
    ],
)
def test_invalid_import_is_422_and_stores_nothing(
    client: FlaskClient, editor: Headers, viewer: Headers, change: Any, where: str,
) -> None:
    workflow = _workflow_with_secrets(client, editor)
    document = copy.deepcopy(client.get(f"/api/workflows/{workflow['id']}/export",
                                        headers=viewer).json)
    change(document)
    before = client.get("/api/workflows", headers=viewer).json["total"]

    response = client.post("/api/workflows/import", json=document, headers=editor)

    assert response.status_code == 422, response.json
    assert where in str(response.json["error"]["details"])
    assert client.get("/api/workflows", headers=viewer).json["total"] == before


def test_template_endpoints_check_roles(client: FlaskClient, viewer: Headers,
                                        operator: Headers) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get("/api/templates").status_code == 401
    assert client.post("/api/workflows/import", json={}, headers=operator).status_code == 403
    assert client.post(f"/api/templates/{missing}/instantiate", json={"name": "x"},
                       headers=viewer).status_code == 403
    assert client.get(f"/api/workflows/{missing}/export", headers=viewer).status_code == 404
