"""/api/approvals and /api/workflow-notifications on the real app (rolled-back transaction).

Deciding resumes the waiting step in the same transaction: these tests check the rows the
decision leaves (approval, step, next steps); tests/approvals runs the same through workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from models.approval import WorkflowApproval, WorkflowNotification
from models.instance import WorkflowExecution, WorkflowInstance
from models.security import AuditLogEntry
from models.workflow import Workflow

Headers = dict[str, str]

DOCUMENT = {
    "nodes": [
        {"id": "start", "type": "trigger", "position": {"x": 0, "y": 0}, "data": {}},
        {"id": "ask", "type": "approval", "position": {"x": 1, "y": 0},
         "data": {"config": {"approver_role": "security-lead", "message": "Ship it?"}}},
        {"id": "yes", "type": "noop", "position": {"x": 2, "y": 0}, "data": {}},
        {"id": "no", "type": "noop", "position": {"x": 2, "y": 1}, "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "ask"},
        {"id": "e2", "source": "ask", "target": "yes", "sourceHandle": "approved"},
        {"id": "e3", "source": "ask", "target": "no", "sourceHandle": "rejected"},
    ],
}


@pytest.fixture
def waiting(client: FlaskClient, editor: Headers,
            session_factory: sessionmaker[Session]) -> dict[str, uuid.UUID]:
    """A running instance whose `ask` step waits on a pending approval."""
    created = client.post("/api/workflows", headers=editor,
                          json={"name": "approve-me", "workflow_data": DOCUMENT})
    assert created.status_code == 201, created.get_json()
    workflow_id = uuid.UUID(created.get_json()["id"])
    with session_factory() as session:
        workflow = session.get(Workflow, workflow_id)
        assert workflow is not None
        instance = WorkflowInstance(workflow_id=workflow_id, status="running",
                                    workflow_version_id=workflow.current_version_id,
                                    execution_context={"input": {}})
        session.add(instance)
        session.flush()
        session.add(WorkflowExecution(instance_id=instance.id, node_id="start",
                                      step_type="trigger", status="completed", output_data={},
                                      attempt=1))
        step = WorkflowExecution(instance_id=instance.id, node_id="ask", step_type="approval",
                                 status="waiting_approval", attempt=1,
                                 output_data={"approval_id": "x"})
        session.add(step)
        session.flush()
        approval = WorkflowApproval(execution_id=step.id, approver_role="security-lead",
                                    approval_message="Ship it?", approval_data={"v": 1})
        session.add(approval)
        session.commit()
        return {"instance": instance.id, "step": step.id, "approval": approval.id}


def _steps(factory: sessionmaker[Session], instance_id: uuid.UUID) -> dict[str, Any]:
    with factory() as session:
        rows = session.scalars(select(WorkflowExecution)
                               .where(WorkflowExecution.instance_id == instance_id)).all()
        return {row.node_id: row for row in rows}


def test_approve_records_who_and_when_and_routes_approved(
        client: FlaskClient, token_for: Callable[..., Headers], waiting: dict[str, uuid.UUID],
        session_factory: sessionmaker[Session]) -> None:
    approver = token_for("security-lead", name="sam-security")
    response = client.post(f"/api/approvals/{waiting['approval']}/approve", headers=approver,
                           json={"comment": "looks good"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "approved"
    assert body["approver_user_id"] == "sam-security"
    assert body["comment"] == "looks good"
    assert body["responded_at"].endswith("Z")
    assert body["instance_id"] == str(waiting["instance"])
    steps = _steps(session_factory, waiting["instance"])
    assert steps["ask"].status == "completed"
    assert steps["ask"].selected_handle == "approved"
    assert steps["ask"].output_data == {"approved": True, "decided_by": "sam-security",
                                        "comment": "looks good"}
    assert steps["yes"].status == "pending"
    assert steps["no"].status == "skipped"
    with session_factory() as session:
        audit = session.scalars(select(AuditLogEntry).where(
            AuditLogEntry.resource_id == str(waiting["approval"]))).all()
    assert [(row.actor, row.outcome) for row in audit] == [("sam-security", "success")]


def test_reject_routes_rejected_with_reason(client: FlaskClient, admin: Headers,
                                           waiting: dict[str, uuid.UUID],
                                           session_factory: sessionmaker[Session]) -> None:
    response = client.post(f"/api/approvals/{waiting['approval']}/reject", headers=admin,
                           json={"reason": "not today"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["rejection_reason"], body["approver_user_id"]) == (
        "rejected", "not today", "alice-admin")
    steps = _steps(session_factory, waiting["instance"])
    assert steps["ask"].selected_handle == "rejected"
    assert steps["ask"].output_data == {"approved": False, "decided_by": "alice-admin",
                                        "comment": "not today"}
    assert (steps["no"].status, steps["yes"].status) == ("pending", "skipped")


@pytest.mark.parametrize("decide", ["approve", "reject"])
def test_a_decision_is_answered_as_stored(client: FlaskClient, admin: Headers,
                                          waiting: dict[str, uuid.UUID], decide: str) -> None:
    """The answer is built from what the decision wrote, not read again after the commit."""
    response = client.post(f"/api/approvals/{waiting['approval']}/{decide}", headers=admin,
                           json={"comment": "ok"} if decide == "approve" else {"reason": "no"})
    assert response.status_code == 200, response.get_json()
    stored = client.get(f"/api/approvals/{waiting['approval']}", headers=admin)
    assert response.get_json() == stored.get_json()


def test_a_decision_the_database_fails_after_is_still_answered_decided(
        client: FlaskClient, admin: Headers, waiting: dict[str, uuid.UUID],
        session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Committed, the decision has taken effect: a database failure in what follows (the
    resumed flow's sends and admission) answers 200, not 500 (`api.after_commit`)."""
    from api.resources import approvals as endpoint
    from tests.worker.helpers import lose_the_database_in

    lose_the_database_in(monkeypatch, endpoint, ["resume_after_commit"])
    caplog.set_level("WARNING", logger="api.after_commit")
    response = client.post(f"/api/approvals/{waiting['approval']}/approve", headers=admin,
                           json={})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "approved"
    assert _steps(session_factory, waiting["instance"])["ask"].status == "completed"
    assert (f"decision on approval {waiting['approval']} committed, then the database "
            "failed") in caplog.text


@pytest.mark.parametrize("roles", [("editor",), ("other-role",), ("viewer", "operator")])
def test_without_the_role_is_403_and_stays_pending(client: FlaskClient,
                                                  token_for: Callable[..., Headers],
                                                  waiting: dict[str, uuid.UUID],
                                                  session_factory: sessionmaker[Session],
                                                  roles: tuple[str, ...]) -> None:
    response = client.post(f"/api/approvals/{waiting['approval']}/approve",
                           headers=token_for(*roles), json={})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    with session_factory() as session:
        approval = session.get(WorkflowApproval, waiting["approval"])
        assert approval is not None and approval.status == "pending"
    assert _steps(session_factory, waiting["instance"])["ask"].status == "waiting_approval"


def test_second_decision_is_409(client: FlaskClient, admin: Headers,
                               waiting: dict[str, uuid.UUID]) -> None:
    url = f"/api/approvals/{waiting['approval']}"
    assert client.post(f"{url}/approve", headers=admin, json={}).status_code == 200
    second = client.post(f"{url}/reject", headers=admin, json={"reason": "late"})
    assert second.status_code == 409
    assert second.get_json()["error"]["details"]["status"] == "approved"
    assert client.get(url, headers=admin).get_json()["status"] == "approved"


def test_expired_approval_is_409(client: FlaskClient, admin: Headers,
                                waiting: dict[str, uuid.UUID],
                                session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        session.execute(text("UPDATE workflow_approvals SET expires_at = now() - interval '1s'"
                             " WHERE id = :id"), {"id": waiting["approval"]})
        session.commit()
    response = client.post(f"/api/approvals/{waiting['approval']}/approve", headers=admin,
                           json={})
    assert response.status_code == 409
    assert "expired" in response.get_json()["error"]["message"]


def test_unknown_approval_is_404_and_unknown_field_422(client: FlaskClient, admin: Headers,
                                                      waiting: dict[str, uuid.UUID]) -> None:
    missing = uuid.uuid4()
    assert client.post(f"/api/approvals/{missing}/approve", headers=admin,
                       json={}).status_code == 404
    assert client.post(f"/api/approvals/{waiting['approval']}/approve", headers=admin,
                       json={"reason": "wrong field"}).status_code == 422


def test_list_filters(client: FlaskClient, viewer: Headers,
                     waiting: dict[str, uuid.UUID]) -> None:
    def ids(query: str) -> list[str]:
        response = client.get(f"/api/approvals?{query}", headers=viewer)
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["items"]]

    approval = str(waiting["approval"])
    assert approval in ids("status=pending")
    assert approval not in ids("status=approved")
    assert ids(f"instance_id={waiting['instance']}") == [approval]
    assert approval in ids("role=security-lead")
    assert approval not in ids("role=someone-else")
    assert client.get("/api/approvals?status=bogus", headers=viewer).status_code == 422


def test_notifications_list_hides_signing_keys(client: FlaskClient, viewer: Headers,
                                              waiting: dict[str, uuid.UUID],
                                              session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        row = WorkflowNotification(
            instance_id=waiting["instance"], notification_type="node", channel="webhook",
            recipients=["https://hooks.example.test/x"], subject="s", message="m",
            status="failed", error_details="HTTP 500", retry_count=3,
            idempotency_key=f"k:{uuid.uuid4()}",
            notification_data={"secret": "top-secret", "secret_ciphertext": "gAAA",
                               "node_id": "n"})
        session.add(row)
        session.commit()
        notification_id = str(row.id)
    listed = client.get(f"/api/workflow-notifications?instance_id={waiting['instance']}"
                        "&status=failed", headers=viewer)
    assert listed.status_code == 200
    [item] = listed.get_json()["items"]
    assert item["id"] == notification_id
    assert (item["status"], item["retry_count"], item["error_details"]) == (
        "failed", 3, "HTTP 500")
    assert item["notification_data"] == {"node_id": "n"}
    assert "top-secret" not in listed.get_data(as_text=True)
    empty = client.get(f"/api/workflow-notifications?instance_id={waiting['instance']}"
                       "&status=sent", headers=viewer)
    assert empty.get_json()["items"] == []
    one = client.get(f"/api/workflow-notifications/{notification_id}", headers=viewer)
    assert one.status_code == 200 and "gAAA" not in one.get_data(as_text=True)
