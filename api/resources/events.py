"""POST /api/events: an event `{source, type, payload}` starts every active matching trigger.

A trigger matches when its configuration names the same `source` and `type` and its optional
CEL `filter` is true over `payload` (also bound as `input`; `source` and `type` are bound
too). A filter that fails to evaluate skips its trigger and is reported under `errors`.
Must not start an inactive trigger's or inactive workflow's instance.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api.audit import set_audit_resource
from api.auth import require_role
from api.context import request_session
from api.schemas.triggers import EventResultSchema, EventSchema
from api.trigger_launch import admit_after_commit, launch_for_api
from engine.expressions import ExpressionError, evaluate_condition
from models.triggers import matching_event_triggers
from models.workflow import WorkflowTrigger
from worker.gateway import fire_trigger

blp = Blueprint("events", __name__, url_prefix="/api/events",
                description="Events that start event-triggered workflows")


def filter_matches(trigger: WorkflowTrigger, event: dict[str, Any]) -> bool:
    """Raises ExpressionError when the filter cannot be evaluated."""
    source = (trigger.configuration or {}).get("filter")
    if not source:
        return True
    context = {"payload": event["payload"], "input": event["payload"],
               "source": event["source"], "type": event["type"]}
    return evaluate_condition(source, context)


@blp.route("")
class Events(MethodView):
    @require_role("operator")
    @blp.arguments(EventSchema)
    @blp.response(202, EventResultSchema)
    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        """Start every active workflow whose event trigger matches; the payload is the input."""
        session = request_session()
        started: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for trigger in matching_event_triggers(session, event["source"], event["type"]):
            try:
                if not filter_matches(trigger, event):
                    continue
            except ExpressionError as error:
                errors.append({"trigger_id": str(trigger.id), "message": str(error)})
                continue
            instance_id = fire_trigger(session, launch_for_api, trigger, event["payload"])
            if instance_id is not None:
                started.append({"trigger_id": trigger.id, "workflow_id": trigger.workflow_id,
                                "instance_id": instance_id})
        session.commit()
        if started:
            admit_after_commit("launch of instances "
                               + ", ".join(str(item["instance_id"]) for item in started))
        set_audit_resource("events", f"{event['source']}:{event['type']}"[:100],
                           {"started": len(started)})
        return {"started": started, "errors": errors}
