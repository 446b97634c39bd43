"""/api/workflows/:id/triggers and /api/triggers/:id: trigger CRUD, configuration checked per type.

A schedule's `next_fire_at` is (re)computed from the database clock whenever it is created,
activated or its cron/timezone changes; an inactive trigger has none. A webhook secret is
stored encrypted (`models.secret_store.seal`, keys from FLOWYARD_SECRET_KEYS; 503 without
keys) and never returned. Must not start instances (firing lives in hooks.py, events.py and
worker/schedules.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.audit import set_audit_resource
from api.auth import require_role
from api.context import app_state, request_session
from api.errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from api.pagination import PaginationArgsSchema, page_schema, paginate
from api.schemas.triggers import (
    TriggerCreateSchema,
    TriggerSchema,
    TriggerUpdateSchema,
    load_trigger_configuration,
)
from engine.statuses import TriggerType
from models.secret_store import WEBHOOK_SECRET_FIELD, MissingSecretKeyError, seal
from models.triggers import create_trigger, delete_trigger, find_trigger, next_fire_time
from models.workflow import Workflow, WorkflowTrigger

blp = Blueprint("triggers", __name__, url_prefix="/api",
                description="Workflow triggers: manual, webhook, schedule, event")


def _workflow_or_404(session: Session, workflow_id: uuid.UUID) -> Workflow:
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        raise NotFoundError(f"no workflow {workflow_id}")
    return workflow


def _trigger_or_404(session: Session, trigger_id: uuid.UUID) -> WorkflowTrigger:
    trigger = find_trigger(session, trigger_id)
    if trigger is None:
        raise NotFoundError(f"no trigger {trigger_id}")
    return trigger


def checked_configuration(trigger_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration as stored: checked, completed, a webhook secret encrypted.

    Raises:
        UnprocessableError: the field messages under details.fields.configuration.
        ServiceUnavailableError: a webhook secret but no FLOWYARD_SECRET_KEYS (nothing is
            stored in clear).
    """
    try:
        loaded = load_trigger_configuration(trigger_type, configuration)
    except ValidationError as error:
        raise UnprocessableError(
            f"invalid configuration for a {trigger_type} trigger",
            details={"fields": {"configuration": error.messages}},
        ) from None
    if trigger_type != TriggerType.WEBHOOK.value or WEBHOOK_SECRET_FIELD not in loaded:
        return loaded
    secret = loaded.pop(WEBHOOK_SECRET_FIELD)
    if secret is None:  # `"secret": null` means no secret
        return loaded
    try:
        loaded[WEBHOOK_SECRET_FIELD] = seal(app_state().settings, secret)
    except MissingSecretKeyError:
        raise ServiceUnavailableError(
            "webhook secrets are disabled: the server has no FLOWYARD_SECRET_KEYS configured"
        ) from None
    return loaded


def schedule_next_fire(session: Session, trigger_type: str, configuration: dict[str, Any],
                       is_active: bool) -> datetime | None:
    if trigger_type != TriggerType.SCHEDULE.value or not is_active:
        return None
    now: datetime = session.scalar(select(func.now()))
    return next_fire_time(configuration["cron"], configuration["timezone"], now)


@blp.route("/workflows/<uuid:workflow_id>/triggers")
class WorkflowTriggers(MethodView):
    @require_role("viewer")
    @blp.arguments(PaginationArgsSchema, location="query")
    @blp.response(200, page_schema(TriggerSchema))
    def get(self, args: dict[str, Any], workflow_id: uuid.UUID) -> dict[str, Any]:
        """The workflow's triggers, newest first."""
        session = request_session()
        _workflow_or_404(session, workflow_id)
        statement = select(WorkflowTrigger).where(WorkflowTrigger.workflow_id == workflow_id)
        return paginate(session, statement, limit=args["limit"], offset=args["offset"],
                        newest_first=(WorkflowTrigger.created_at.desc(),
                                      WorkflowTrigger.id.desc()))

    @require_role("editor")
    @blp.arguments(TriggerCreateSchema)
    @blp.response(201, TriggerSchema)
    def post(self, body: dict[str, Any], workflow_id: uuid.UUID) -> WorkflowTrigger:
        """Add a trigger; its configuration is checked for its type (422 otherwise)."""
        session = request_session()
        _workflow_or_404(session, workflow_id)
        configuration = checked_configuration(body["trigger_type"], body["configuration"])
        trigger = create_trigger(
            session, workflow_id, trigger_type=body["trigger_type"],
            trigger_source=body["trigger_source"], configuration=configuration,
            is_active=body["is_active"],
            next_fire_at=schedule_next_fire(session, body["trigger_type"], configuration,
                                            body["is_active"]),
        )
        session.commit()
        set_audit_resource("triggers", trigger.id, {"workflow_id": str(workflow_id),
                                                    "trigger_type": trigger.trigger_type})
        return trigger


def _stored_configuration(trigger: WorkflowTrigger, body: dict[str, Any],
                          trigger_type: str) -> dict[str, Any]:
    """The checked configuration to store after a PUT."""
    old = dict(trigger.configuration or {})
    # The stored secret is encrypted: it is kept aside, never validated or re-encrypted.
    kept = old.pop(WEBHOOK_SECRET_FIELD, None)
    if "configuration" not in body:
        new = old if trigger_type == trigger.trigger_type else {}
    else:
        new = dict(body["configuration"])
    configuration = checked_configuration(trigger_type, new)
    # Clients never see the secret, so a configuration sent back without it keeps it;
    # `"secret": null` removes it.
    if (trigger_type == TriggerType.WEBHOOK.value and kept
            and WEBHOOK_SECRET_FIELD not in new):
        configuration[WEBHOOK_SECRET_FIELD] = kept
    return configuration


@blp.route("/triggers/<uuid:trigger_id>")
class TriggerById(MethodView):
    @require_role("viewer")
    @blp.response(200, TriggerSchema)
    def get(self, trigger_id: uuid.UUID) -> WorkflowTrigger:
        """One trigger."""
        return _trigger_or_404(request_session(), trigger_id)

    @require_role("editor")
    @blp.arguments(TriggerUpdateSchema)
    @blp.response(200, TriggerSchema)
    def put(self, body: dict[str, Any], trigger_id: uuid.UUID) -> WorkflowTrigger:
        """Change a trigger; fields left out keep their values."""
        session = request_session()
        trigger = _trigger_or_404(session, trigger_id)
        trigger_type = body.get("trigger_type", trigger.trigger_type)
        configuration = _stored_configuration(trigger, body, trigger_type)
        is_active = body.get("is_active", bool(trigger.is_active))
        reschedule = (trigger_type != trigger.trigger_type or is_active != trigger.is_active
                      or configuration != (trigger.configuration or {}))
        if "trigger_source" in body:
            trigger.trigger_source = body["trigger_source"]
        if reschedule:
            trigger.next_fire_at = schedule_next_fire(session, trigger_type, configuration,
                                                      is_active)
        trigger.trigger_type = trigger_type
        trigger.configuration = configuration
        trigger.is_active = is_active
        session.flush()
        session.commit()
        set_audit_resource("triggers", trigger.id)
        return trigger

    @require_role("editor")
    @blp.response(204)
    def delete(self, trigger_id: uuid.UUID) -> None:
        """Remove a trigger; it never fires again."""
        session = request_session()
        delete_trigger(session, _trigger_or_404(session, trigger_id))
        session.commit()
        set_audit_resource("triggers", trigger_id)
