"""On real workers: every built-in template runs after a fresh install, an exported and
re-imported workflow gives the same result, and signed webhooks start runs that complete."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from api.app import create_app, default_node_types
from api.auth import issue_token
from api.resources.hooks import signature_for
from api.templates_seed import seed_builtin_templates
from models.approval import WorkflowApproval
from models.db import transaction
from models.instance import WorkflowInstance
from models.workflow import Workflow
from tests.e2e.helpers import start, steps, wait_status
from tests.processes import wait_until
from worker.nodes.approval import decide

pytestmark = pytest.mark.slow
Headers = dict[str, str]


@pytest.fixture(scope="module")
def api(runtime: Any, secret_key: str) -> Iterator[tuple[FlaskClient, Headers]]:
    """The real API on the session database (committing), with an editor token."""
    app = create_app(runtime.settings.replace(secret_keys=(secret_key,)),
                     session_factory=runtime.session_factory)
    with transaction(runtime.session_factory) as session:
        _, token = issue_token(session, name="templates-e2e", roles=["editor"])
    yield app.test_client(), {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def library(runtime: Any) -> dict[str, uuid.UUID]:
    """The built-in templates, installed as `flowyard db upgrade` installs them."""
    with transaction(runtime.session_factory) as session:
        seed_builtin_templates(session, settings=runtime.settings,
                               node_types=default_node_types())
    with runtime.session_factory() as session:
        rows = session.execute(select(Workflow.builtin_key, Workflow.id)
                               .where(Workflow.builtin_key.is_not(None))).all()
    return {key: workflow_id for key, workflow_id in rows}


def _instantiate(api: tuple[FlaskClient, Headers], template_id: uuid.UUID) -> uuid.UUID:
    client, headers = api
    response = client.post(f"/api/templates/{template_id}/instantiate",
                           json={"name": f"from template {uuid.uuid4().hex[:6]}"},
                           headers=headers)
    assert response.status_code == 201, response.json
    return uuid.UUID(response.json["id"])


def _approve(runtime: Any, instance_id: uuid.UUID, node_id: str, approved: bool) -> None:
    def waiting() -> Any:
        step = steps(runtime, instance_id).get(node_id)
        return step if step is not None and step.status == "waiting_approval" else None

    step = wait_until(waiting, 60.0, message=f"{node_id} waiting for approval")
    with runtime.session_factory() as session:
        approval_id = session.scalar(select(WorkflowApproval.id)
                                     .where(WorkflowApproval.execution_id == step.id))
    assert approval_id is not None
    decision = decide(runtime, approval_id, approved=approved, decided_by="e2e-approver",
                      comment="ok" if approved else None)
    assert decision is not None


def _run(runtime: Any, workflow_id: uuid.UUID, payload: dict[str, Any],
         approvals: list[tuple[str, bool]] = ()) -> WorkflowInstance:  # type: ignore[assignment]
    instance_id = start(runtime, workflow_id, payload)
    for node_id, approved in approvals:
        _approve(runtime, instance_id, node_id, approved)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    return row


def test_vulnerability_triage_routes_by_severity(runtime: Any, cluster: Any, api: Any,
                                                 library: dict[str, uuid.UUID]) -> None:
    workflow_id = _instantiate(api, library["vulnerability_triage"])
    low = _run(runtime, workflow_id, {"title": "TLS 1.0", "severity": 3.1})
    assert low.output_data == {"backlog": {"action": "backlog", "title": "TLS 1.0",
                                           "severity": 3.1}}
    critical = _run(runtime, workflow_id, {"title": "RCE", "severity": 9, "asset": "web-1"},
                    approvals=[("approve", True)])
    assert critical.output_data == {"ticket": {"action": "ticket", "title": "RCE",
                                               "severity": 9.0,
                                               "approved_by": "e2e-approver"}}


def test_approval_chain_grants_or_denies(runtime: Any, cluster: Any, api: Any,
                                         library: dict[str, uuid.UUID]) -> None:
    workflow_id = _instantiate(api, library["approval_chain"])
    granted = _run(runtime, workflow_id, {"request": "new laptop"},
                   approvals=[("manager", True), ("director", True)])
    assert granted.output_data == {"granted": {"approved": True, "manager": "e2e-approver",
                                               "director": "e2e-approver"}}
    denied = _run(runtime, workflow_id, {"request": "yacht"}, approvals=[("manager", False)])
    assert denied.output_data == {"denied": {"approved": False}}


def test_incident_fanout_notifies_every_channel(runtime: Any, cluster: Any, api: Any,
                                                library: dict[str, uuid.UUID]) -> None:
    workflow_id = _instantiate(api, library["incident_fanout"])
    row = _run(runtime, workflow_id, {
        "title": "API down", "severity": "sev1",
        "slack_webhooks": ["http://127.0.0.1:9/slack"], "emails": ["oncall@example.invalid"],
        "webhooks": ["http://127.0.0.1:9/hook"]})
    report = (row.output_data or {})["report"]
    assert report["incident"] == "API down"
    for channel in ("slack", "email", "webhook"):
        assert "notification_id" in report[channel] or "error" in report[channel], report


def test_scheduled_report_builds_its_report(runtime: Any, cluster: Any, api: Any,
                                            library: dict[str, uuid.UUID]) -> None:
    workflow_id = _instantiate(api, library["scheduled_report"])
    row = _run(runtime, workflow_id, {"report": "weekly", "metrics": {"runs": 7, "failed": 0},
                                      "recipients": ["ops@example.invalid"]})
    built = steps(runtime, row.id)["build"].output_data
    assert built["subject"] == "Flowyard weekly report" and built["metric_count"] == 2
    assert set(row.output_data or {}) == {"send"}


def test_every_template_runs_as_installed(runtime: Any, cluster: Any,
                                          library: dict[str, uuid.UUID]) -> None:
    """The templates themselves (not copies) run with no input at all."""
    assert {"vulnerability_triage", "approval_chain", "incident_fanout",
            "scheduled_report"} <= set(library)
    decisions = {"approval_chain": [("manager", False)]}
    for key, workflow_id in sorted(library.items()):
        row = _run(runtime, workflow_id, {}, approvals=decisions.get(key, []))
        assert row.output_data, key


def test_export_import_execute_gives_the_same_result(runtime: Any, cluster: Any,
                                                     api: Any) -> None:
    client, headers = api
    document = {
        "name": "Portable scoring", "category": "custom",
        "workflow_data": {
            "nodes": [
                {"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                 "data": {"label": "Start"}},
                {"id": "score", "type": "transform", "position": {"x": 1, "y": 0},
                 "data": {"label": "Score", "config": {"output": {
                     "score": "{{ input.a * 10 + input.b }}"}}}},
                {"id": "big", "type": "condition", "position": {"x": 2, "y": 0},
                 "data": {"label": "Big?",
                          "config": {"expression": "nodes.score.output.score > 50"}}},
                {"id": "yes", "type": "transform", "position": {"x": 3, "y": 0},
                 "data": {"label": "Yes", "config": {"output": {
                     "verdict": "big {{ nodes.score.output.score }}"}}}},
                {"id": "no", "type": "transform", "position": {"x": 3, "y": 1},
                 "data": {"label": "No", "config": {"output": {"verdict": "small"}}}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "score"},
                {"id": "e2", "source": "score", "target": "big"},
                {"id": "e3", "source": "big", "target": "yes", "sourceHandle": "true"},
                {"id": "e4", "source": "big", "target": "no", "sourceHandle": "false"},
            ],
        },
    }
    created = client.post("/api/workflows", json=document, headers=headers)
    assert created.status_code == 201, created.json
    original = uuid.UUID(created.json["id"])
    exported = client.get(f"/api/workflows/{original}/export", headers=headers).json
    imported = client.post("/api/workflows/import", json=json.loads(json.dumps(exported)),
                           headers=headers)
    assert imported.status_code == 201, imported.json
    copy = uuid.UUID(imported.json["id"])

    for payload in ({"a": 7, "b": 2}, {"a": 1, "b": 1}):
        first = _run(runtime, original, payload)
        second = _run(runtime, copy, payload)
        assert first.output_data == second.output_data
        assert {k: v.status for k, v in steps(runtime, first.id).items()} == \
            {k: v.status for k, v in steps(runtime, second.id).items()}
    assert first.output_data == {"no": {"verdict": "small"}}


def test_signed_webhook_runs_to_completion_and_unsigned_starts_nothing(
    runtime: Any, cluster: Any, api: Any
) -> None:
    client, headers = api
    created = client.post("/api/workflows", json={"name": "hooked", "workflow_data": {
        "nodes": [{"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                   "data": {"label": "Start"}},
                  {"id": "echo", "type": "transform", "position": {"x": 1, "y": 0},
                   "data": {"label": "Echo", "config": {"output": {
                       "title": "{{ input.title }}"}}}}],
        "edges": [{"id": "e1", "source": "start", "target": "echo"}]}}, headers=headers)
    workflow_id = created.json["id"]
    secret = "e2e-webhook-secret"
    trigger = client.post(f"/api/workflows/{workflow_id}/triggers", headers=headers, json={
        "trigger_type": "webhook", "configuration": {"secret": secret}}).json
    body = json.dumps({"title": "from a hook"}).encode()

    refused = client.post(f"/api/hooks/{trigger['id']}", data=body,
                          headers={"Content-Type": "application/json"})
    accepted = client.post(f"/api/hooks/{trigger['id']}", data=body, headers={
        "Content-Type": "application/json", "X-Flowyard-Signature": signature_for(secret, body)})

    assert refused.status_code == 401
    assert accepted.status_code == 202
    row = wait_status(runtime, uuid.UUID(accepted.json["instance_id"]))
    assert row.status == "completed", row.error_details
    assert row.output_data == {"echo": {"title": "from a hook"}}
    with runtime.session_factory() as session:
        count = len(session.scalars(select(WorkflowInstance.id).where(
            WorkflowInstance.workflow_id == uuid.UUID(workflow_id))).all())
    assert count == 1
