"""Webhook secrets are stored encrypted, verified after decryption and rotated with the keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.resources.hooks import signature_for
from models.secret_store import SEALED_KEY, rotate_all
from models.settings import Settings
from models.workflow import WorkflowTrigger

Headers = dict[str, str]
SECRET = "plaintext-webhook-secret-4711"
BODY = json.dumps({"title": "signed"}).encode()


def _raw_configuration(factory: sessionmaker[Session], trigger_id: str) -> str:
    with factory() as session:
        raw = session.scalar(text("SELECT configuration::text FROM workflow_triggers "
                                  "WHERE id = :id"), {"id": trigger_id})
    assert raw is not None
    return str(raw)


def _create(client: FlaskClient, editor: Headers, workflow_id: uuid.UUID) -> str:
    response = client.post(f"/api/workflows/{workflow_id}/triggers", headers=editor, json={
        "trigger_type": "webhook", "configuration": {"secret": SECRET}})
    assert response.status_code == 201, response.json
    return str(response.json["id"])


def _call(client: FlaskClient, trigger_id: str, secret: str = SECRET) -> int:
    return client.post(f"/api/hooks/{trigger_id}", data=BODY, headers={
        "Content-Type": "application/json",
        "X-Flowyard-Signature": signature_for(secret, BODY)}).status_code


def test_the_stored_column_holds_no_plaintext_and_the_signature_still_verifies(
    client: FlaskClient, editor: Headers, api_workflow: Callable[..., uuid.UUID],
    session_factory: sessionmaker[Session],
) -> None:
    trigger_id = _create(client, editor, api_workflow())

    raw = _raw_configuration(session_factory, trigger_id)
    assert SECRET not in raw and SEALED_KEY in raw
    assert _call(client, trigger_id, "a-different-secret") == 401
    assert _call(client, trigger_id) == 202
    # An update that leaves the secret out keeps the encrypted one, which still verifies.
    updated = client.put(f"/api/triggers/{trigger_id}", headers=editor,
                         json={"configuration": {}, "trigger_source": "ci"})
    assert updated.status_code == 200 and updated.json["secret_set"] is True
    assert SECRET not in _raw_configuration(session_factory, trigger_id)
    assert _call(client, trigger_id) == 202


def test_without_keys_a_webhook_secret_is_refused_with_503_and_nothing_is_stored(
    settings: Settings, session_factory: sessionmaker[Session], editor: Headers,
    api_workflow: Callable[..., uuid.UUID],
) -> None:
    keyless = create_app(settings.replace(secret_keys=()), session_factory=session_factory)
    client = keyless.test_client()
    workflow_id = api_workflow()

    response = client.post(f"/api/workflows/{workflow_id}/triggers", headers=editor, json={
        "trigger_type": "webhook", "configuration": {"secret": SECRET}})
    open_hook = client.post(f"/api/workflows/{workflow_id}/triggers", headers=editor, json={
        "trigger_type": "webhook", "configuration": {}})

    assert response.status_code == 503
    assert "FLOWYARD_SECRET_KEYS" in response.json["error"]["message"]
    assert open_hook.status_code == 201  # a webhook without a secret needs no key
    with session_factory() as session:
        count = session.scalar(select(func.count()).select_from(WorkflowTrigger)
                               .where(WorkflowTrigger.workflow_id == workflow_id))
    assert count == 1


def test_rotation_re_encrypts_webhook_secrets_and_they_keep_working(
    app: Flask, settings: Settings, secret_key: str, editor: Headers,
    api_workflow: Callable[..., uuid.UUID], session_factory: sessionmaker[Session],
) -> None:
    workflow_id = api_workflow()
    trigger_id = _create(app.test_client(), editor, workflow_id)
    # A secret written in clear before secrets were sealed is encrypted by the rotation.
    with session_factory() as session:
        legacy = WorkflowTrigger(workflow_id=workflow_id, trigger_type="webhook",
                                 configuration={"secret": "legacy-clear-secret"},
                                 is_active=True, trigger_count=0)
        session.add(legacy)
        session.commit()
        legacy_id = str(legacy.id)
    before = _raw_configuration(session_factory, trigger_id)
    new_key = Fernet.generate_key().decode()

    with session_factory() as session:
        rotated = rotate_all(session, settings.replace(secret_keys=(new_key, secret_key)))
        session.commit()
    try:
        assert rotated >= 2
        after = _raw_configuration(session_factory, trigger_id)
        assert after != before and SECRET not in after
        assert "legacy-clear-secret" not in _raw_configuration(session_factory, legacy_id)
        new_only = create_app(settings.replace(secret_keys=(new_key,)),
                              session_factory=session_factory).test_client()
        assert _call(new_only, trigger_id) == 202
        assert _call(new_only, legacy_id, "legacy-clear-secret") == 202
        assert _call(new_only, trigger_id, "legacy-clear-secret") == 401
    finally:
        # The database is shared by the whole session: every other test reads (and
        # rotates) its secrets with the session key, so put them back under it.
        with session_factory() as session:
            rotate_all(session, settings.replace(secret_keys=(secret_key, new_key)))
            session.commit()
