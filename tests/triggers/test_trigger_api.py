"""Trigger CRUD over HTTP: per-type configuration checks, roles, secrets never shown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

Headers = dict[str, str]


def _create(client: FlaskClient, headers: Headers, workflow_id: object,
            body: dict[str, Any]) -> Any:
    return client.post(f"/api/workflows/{workflow_id}/triggers", json=body, headers=headers)


def test_create_list_update_delete_a_schedule(
    client: FlaskClient, editor: Headers, viewer: Headers, api_workflow: Callable[..., Any]
) -> None:
    workflow_id = api_workflow()
    created = _create(client, editor, workflow_id, {
        "trigger_type": "schedule", "trigger_source": "nightly",
        "configuration": {"cron": "0 9 * * *", "timezone": "Europe/Paris"},
    })
    assert created.status_code == 201, created.json
    body = created.json
    assert body["configuration"] == {"cron": "0 9 * * *", "timezone": "Europe/Paris",
                                     "input": {}}
    assert body["is_active"] is True and body["trigger_count"] == 0
    assert body["last_triggered"] is None
    next_fire = datetime.fromisoformat(body["next_fire_at"].replace("Z", "+00:00"))
    # 09:00 Paris is 08:00 UTC in winter (today is in November) and 07:00 UTC in summer.
    assert (next_fire.hour, next_fire.minute) in {(8, 0), (7, 0)}

    listed = client.get(f"/api/workflows/{workflow_id}/triggers", headers=viewer)
    assert listed.status_code == 200
    assert listed.json["total"] == 1 and listed.json["items"][0]["id"] == body["id"]

    paused = client.put(f"/api/triggers/{body['id']}", json={"is_active": False}, headers=editor)
    assert paused.status_code == 200
    assert paused.json["is_active"] is False and paused.json["next_fire_at"] is None
    resumed = client.put(f"/api/triggers/{body['id']}", json={"is_active": True}, headers=editor)
    assert resumed.json["next_fire_at"] is not None
    hourly = client.put(f"/api/triggers/{body['id']}", headers=editor, json={
        "configuration": {"cron": "30 * * * *", "timezone": "UTC"}})
    assert hourly.status_code == 200
    assert hourly.json["next_fire_at"].endswith(":30:00Z")
    assert hourly.json["configuration"] == {"cron": "30 * * * *", "timezone": "UTC",
                                            "input": {}}

    assert client.delete(f"/api/triggers/{body['id']}", headers=editor).status_code == 204
    assert client.get(f"/api/triggers/{body['id']}", headers=viewer).status_code == 404
    listed = client.get(f"/api/workflows/{workflow_id}/triggers", headers=viewer)
    assert listed.json["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trigger_type": "schedule", "configuration": {"cron": "every day"}}, "cron"),
        ({"trigger_type": "schedule", "configuration": {}}, "cron"),
        ({"trigger_type": "schedule",
          "configuration": {"cron": "* * * * *", "timezone": "Nowhere/City"}}, "timezone"),
        ({"trigger_type": "event", "configuration": {"source": "gitlab"}}, "type"),
        ({"trigger_type": "event",
          "configuration": {"source": "a", "type": "b", "filter": "payload.x >"}}, "filter"),
        ({"trigger_type": "webhook", "configuration": {"secret": "short"}}, "secret"),
        ({"trigger_type": "webhook", "configuration": {"unknown": 1}}, "unknown"),
    ],
)
def test_configuration_is_checked_for_the_trigger_type(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., Any],
    body: dict[str, Any], field: str,
) -> None:
    response = _create(client, editor, api_workflow(), body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]["fields"]["configuration"]


def test_unknown_trigger_type_and_unknown_fields_are_422(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., Any]
) -> None:
    workflow_id = api_workflow()
    assert _create(client, editor, workflow_id, {"trigger_type": "cron"}).status_code == 422
    response = _create(client, editor, workflow_id, {"trigger_type": "manual", "color": "red"})
    assert response.status_code == 422


def test_webhook_secret_is_never_returned_and_survives_an_update(
    client: FlaskClient, editor: Headers, viewer: Headers, api_workflow: Callable[..., Any]
) -> None:
    secret = "s3cret-value-for-hmac"
    created = _create(client, editor, api_workflow(), {
        "trigger_type": "webhook", "configuration": {"secret": secret}})
    assert created.status_code == 201
    trigger_id = created.json["id"]
    assert secret not in created.get_data(as_text=True)
    assert created.json["secret_set"] is True
    assert created.json["webhook_url"] == f"/api/hooks/{trigger_id}"

    updated = client.put(f"/api/triggers/{trigger_id}", json={"configuration": {}},
                         headers=editor)
    assert updated.status_code == 200 and updated.json["secret_set"] is True
    cleared = client.put(f"/api/triggers/{trigger_id}",
                         json={"configuration": {"secret": None}}, headers=editor)
    assert cleared.json["secret_set"] is False
    fetched = client.get(f"/api/triggers/{trigger_id}", headers=viewer)
    assert secret not in fetched.get_data(as_text=True)


def test_roles_and_missing_resources(
    client: FlaskClient, viewer: Headers, editor: Headers, api_workflow: Callable[..., Any]
) -> None:
    workflow_id = api_workflow()
    body = {"trigger_type": "manual"}
    assert _create(client, viewer, workflow_id, body).status_code == 403
    missing = "00000000-0000-0000-0000-000000000000"
    assert _create(client, editor, missing, body).status_code == 404
    assert client.put(f"/api/triggers/{missing}", json={}, headers=editor).status_code == 404
    assert client.delete(f"/api/triggers/{missing}", headers=editor).status_code == 404
    assert client.get(f"/api/workflows/{workflow_id}/triggers").status_code == 401
