"""/api/secrets and /api/audit-log: values never returned, audit rows for every change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.secret_store import read_secret_value
from models.security import AuditLogEntry, Secret
from models.settings import Settings

Headers = dict[str, str]
VALUE = "xoxb-very-secret-7781"


def _audit(factory: sessionmaker[Session], action: str) -> list[AuditLogEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == action)
                                    .order_by(AuditLogEntry.id)))


def test_secret_lifecycle_never_returns_the_value(
    client: FlaskClient, token_for: Callable[..., Headers],
    session_factory: sessionmaker[Session], app_settings: Settings,
) -> None:
    editor = token_for("editor", name="eddie")
    seen: list[str] = []

    created = client.post("/api/secrets", headers=editor,
                          json={"name": "SLACK_TOKEN", "value": VALUE, "description": "bot"})
    seen.append(created.get_data(as_text=True))
    assert created.status_code == 201
    assert created.json["name"] == "SLACK_TOKEN" and created.json["created_by"] == "eddie"
    assert "value" not in created.json

    replaced = client.post("/api/secrets", headers=editor,
                           json={"name": "SLACK_TOKEN", "value": VALUE + "-2"})
    seen.append(replaced.get_data(as_text=True))
    assert replaced.status_code == 200

    listed = client.get("/api/secrets", headers=editor)
    seen.append(listed.get_data(as_text=True))
    assert listed.status_code == 200
    assert [item["name"] for item in listed.json["items"]] == ["SLACK_TOKEN"]
    assert listed.json["total"] == 1

    with session_factory() as session:
        stored = session.scalars(select(Secret.ciphertext)).one()
        assert VALUE.encode() not in bytes(stored)
        assert read_secret_value(session, app_settings, "SLACK_TOKEN") == VALUE + "-2"

    bad = client.post("/api/secrets", headers=editor,
                      json={"name": "bad name", "value": VALUE, "extra": VALUE})
    seen.append(bad.get_data(as_text=True))
    assert bad.status_code == 422

    admin = token_for("admin")
    audit = client.get("/api/audit-log?resource_type=secrets", headers=admin)
    seen.append(audit.get_data(as_text=True))

    deleted = client.delete("/api/secrets/SLACK_TOKEN", headers=editor)
    assert deleted.status_code == 204
    assert client.delete("/api/secrets/SLACK_TOKEN", headers=editor).status_code == 404
    assert client.get("/api/secrets", headers=editor).json["total"] == 0

    for body in seen:
        assert VALUE not in body
    rows = _audit(session_factory, "POST /api/secrets")
    assert [(r.actor, r.resource_id, r.outcome, r.status_code) for r in rows] == [
        ("eddie", "SLACK_TOKEN", "success", 201),
        ("eddie", "SLACK_TOKEN", "success", 200),
        ("eddie", None, "failure", 422),
    ]
    deletes = _audit(session_factory, "DELETE /api/secrets/<string:name>")
    assert [(r.resource_id, r.outcome) for r in deletes] == [
        ("SLACK_TOKEN", "success"), ("SLACK_TOKEN", "failure")]
    for row in rows + deletes:
        assert VALUE not in json.dumps(row.details or {})


def test_viewer_and_operator_cannot_touch_secrets(
    client: FlaskClient, token_for: Callable[..., Headers],
    session_factory: sessionmaker[Session],
) -> None:
    for role in ("viewer", "operator", "approver-role"):
        headers = token_for(role, name=f"who-{role}")
        assert client.get("/api/secrets", headers=headers).status_code == 403
        response = client.post("/api/secrets", headers=headers,
                               json={"name": "X", "value": VALUE})
        assert response.status_code == 403
        assert VALUE not in response.get_data(as_text=True)
    denied = _audit(session_factory, "POST /api/secrets")
    assert {r.outcome for r in denied} == {"denied"} and len(denied) == 3


def test_no_secret_keys_is_a_clear_503(
    settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    from api.app import create_app

    client = create_app(settings.replace(secret_keys=()),
                        session_factory=session_factory).test_client()
    response = client.post("/api/secrets", headers=token_for("editor"),
                           json={"name": "X", "value": VALUE})
    assert response.status_code == 503
    assert "FLOWYARD_SECRET_KEYS" in response.json["error"]["message"]
    assert VALUE not in response.get_data(as_text=True)


def test_audit_log_filters_and_pagination(
    client: FlaskClient, token_for: Callable[..., Headers],
) -> None:
    # Audit rows commit on their own, so other tests' rows share this table: every
    # assertion filters by this test's own actors or its start time.
    suffix = uuid.uuid4().hex[:6]
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    eve, vic = f"eve-{suffix}", f"vic-{suffix}"
    editor = token_for("editor", name=eve)
    for index in range(3):
        assert client.post("/api/secrets", headers=editor,
                           json={"name": f"S{index}", "value": "v"}).status_code == 201
    client.post("/api/secrets", headers=token_for("viewer", name=vic),
                json={"name": "S9", "value": "v"})
    admin = token_for("admin", name="root")

    page = client.get(f"/api/audit-log?actor={eve}&limit=2", headers=admin).json
    assert page["total"] == 3 and page["limit"] == 2 and len(page["items"]) == 2
    assert [item["resource_id"] for item in page["items"]] == ["S2", "S1"]  # newest first
    rest = client.get(f"/api/audit-log?actor={eve}&limit=2&offset=2", headers=admin).json
    assert [item["resource_id"] for item in rest["items"]] == ["S0"]
    item = page["items"][0]
    assert item["action"] == "POST /api/secrets" and item["outcome"] == "success"
    assert item["request_id"] and item["occurred_at"].endswith("Z")

    denied = client.get(f"/api/audit-log?outcome=denied&since={started}",
                        headers=admin).json
    assert [i["actor"] for i in denied["items"]] == [vic]
    assert client.get(f"/api/audit-log?actor={vic}&outcome=success",
                      headers=admin).json["total"] == 0
    assert client.get("/api/audit-log?since=2999-01-01T00:00:00Z",
                      headers=admin).json["total"] == 0
    assert client.get(f"/api/audit-log?since={started}&resource_type=secrets",
                      headers=admin).json["total"] == 4
    assert client.get("/api/audit-log?outcome=maybe", headers=admin).status_code == 422
    assert client.get("/api/audit-log?colour=red", headers=admin).status_code == 422
    assert client.get("/api/audit-log", headers=editor).status_code == 403


def test_audit_rows_cannot_be_changed_through_the_api(
    client: FlaskClient, token_for: Callable[..., Headers],
) -> None:
    admin = token_for("admin")
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        response = client.open("/api/audit-log", method=method, headers=admin, json={})
        assert response.status_code == 405, method


def test_login_failures_are_audited_on_reads_too(
    client: FlaskClient, session_factory: sessionmaker[Session],
) -> None:
    response = client.get("/api/secrets", headers={"Authorization": "Bearer wrong"},
                          environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert response.status_code == 401
    rows = _audit(session_factory, "GET /api/secrets")
    assert [(r.actor, r.outcome, r.status_code, r.client_address) for r in rows] == [
        (None, "denied", 401, "127.0.0.9")]
    assert rows[0].request_id == response.headers["X-Request-ID"]
