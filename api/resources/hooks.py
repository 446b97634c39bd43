"""POST /api/hooks/:trigger_id: a webhook trigger starts its workflow with the JSON body as input.

No bearer token: a trigger with `configuration.secret` requires `X-Flowyard-Signature:
sha256=<hex HMAC-SHA256 of the raw body>`, compared in constant time; a missing or wrong
signature is 401 and starts nothing. The signature is checked before anything about the
trigger's state is revealed. The secret is stored encrypted and decrypted only here, for the
comparison. Must not accept a signed call for a different body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from api.audit import set_audit_resource
from api.context import app_state, request_session
from api.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
)
from api.schemas.triggers import HookResultSchema
from api.trigger_launch import admit_after_commit, launch_for_api
from engine.statuses import TriggerType
from models.secret_store import WEBHOOK_SECRET_FIELD, SecretStoreError, open_sealed
from models.triggers import find_trigger
from models.workflow import Workflow, WorkflowTrigger
from worker.gateway import fire_trigger

SIGNATURE_HEADER = "X-Flowyard-Signature"
SIGNATURE_PREFIX = "sha256="

blp = Blueprint("hooks", __name__, url_prefix="/api/hooks",
                description="Webhook triggers (no bearer token; HMAC-signed when a secret is set)")


def signature_for(secret: str, body: bytes) -> str:
    """The header value a caller must send for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    expected = signature_for(secret, body).encode("ascii")
    # Compared as bytes in constant time; a non-ASCII header simply does not match.
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def _webhook_or_404(trigger_id: uuid.UUID) -> WorkflowTrigger:
    trigger = find_trigger(request_session(), trigger_id)
    if trigger is None or trigger.trigger_type != TriggerType.WEBHOOK.value:
        raise NotFoundError(f"no webhook trigger {trigger_id}")
    return trigger


def _webhook_secret(trigger: WorkflowTrigger) -> str | None:
    """The trigger's secret in clear, or None when it has none.

    Raises:
        ServiceUnavailableError: the stored secret cannot be decrypted (keys missing or wrong).
    """
    stored = (trigger.configuration or {}).get(WEBHOOK_SECRET_FIELD)
    if not stored:
        return None
    try:
        return open_sealed(app_state().settings, stored)
    except SecretStoreError:
        raise ServiceUnavailableError(
            "the webhook secret cannot be read: check FLOWYARD_SECRET_KEYS"
        ) from None


def _payload(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise UnprocessableError("the body must be a JSON object (it becomes the input)")
    return payload


@blp.route("/<uuid:trigger_id>")
class Hook(MethodView):
    @blp.response(202, HookResultSchema)
    @blp.alt_response(401, description="signature missing or wrong")
    @blp.alt_response(404, description="no such webhook trigger")
    @blp.alt_response(409, description="the trigger or its workflow is inactive")
    @blp.doc(security=[])
    def post(self, trigger_id: uuid.UUID) -> dict[str, Any]:
        """Start the trigger's workflow with the JSON body as its input."""
        raw = request.get_data(cache=True)
        trigger = _webhook_or_404(trigger_id)
        secret = _webhook_secret(trigger)
        if secret and not signature_matches(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            raise UnauthorizedError(f"missing or wrong {SIGNATURE_HEADER} signature")
        payload = _payload(raw)
        session = request_session()
        workflow = session.get(Workflow, trigger.workflow_id)
        if not trigger.is_active or workflow is None or workflow.is_active is False:
            raise ConflictError("the trigger or its workflow is inactive")
        instance_id = fire_trigger(session, launch_for_api, trigger, payload)
        if instance_id is None:
            raise ConflictError("the trigger or its workflow is inactive")
        session.commit()
        admit_after_commit(f"launch of instance {instance_id}")
        set_audit_resource("workflow-instances", instance_id, {"trigger_id": str(trigger_id)})
        return {"instance_id": instance_id, "trigger_id": trigger.id,
                "workflow_id": trigger.workflow_id, "status": "pending"}
