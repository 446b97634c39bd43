"""/api/workflow-notifications: read the notification rows (viewer); signing keys never shown."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from api.auth import require_role
from api.blueprint import Blueprint
from api.context import request_session
from api.errors import NotFoundError
from api.pagination import page_schema, paginate
from api.schemas.approvals import NotificationListArgsSchema, NotificationSchema
from models.approval import WorkflowNotification
from models.notifications import find_notification, notifications_query

blp = Blueprint("notifications", __name__, url_prefix="/api/workflow-notifications",
                description="Notifications sent by steps and workflow notices")


@blp.route("")
class Notifications(MethodView):
    @require_role("viewer")
    @blp.arguments(NotificationListArgsSchema, location="query")
    @blp.response(200, page_schema(NotificationSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List notifications, newest first (`?instance_id=&execution_id=&status=`)."""
        statement = notifications_query(instance_id=args.get("instance_id"),
                                        execution_id=args.get("execution_id"),
                                        status=args.get("status"))
        return paginate(request_session(), statement, limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(WorkflowNotification.created_at.desc(),
                                      WorkflowNotification.id.desc()))


@blp.route("/<uuid:notification_id>")
class NotificationById(MethodView):
    @require_role("viewer")
    @blp.response(200, NotificationSchema)
    def get(self, notification_id: uuid.UUID) -> WorkflowNotification:
        """One notification with its delivery state."""
        row = find_notification(request_session(), notification_id)
        if row is None:
            raise NotFoundError(f"no notification {notification_id}")
        return row
