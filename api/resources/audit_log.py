"""GET /api/audit-log: the audit trail, filtered and paginated; admin only, read-only.

There is deliberately no endpoint that updates or deletes audit rows.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from api.auth import require_role
from api.blueprint import Blueprint
from api.context import request_session
from api.pagination import page_schema, paginate
from api.schemas.audit_log import AuditLogArgsSchema, AuditLogEntrySchema
from models.security import AuditLogEntry

blp = Blueprint("audit_log", __name__, url_prefix="/api/audit-log",
                description="Who did what, when, with which outcome (admin only)")

_EXACT_FILTERS = ("actor", "action", "resource_type", "resource_id", "outcome")


@blp.route("")
class AuditLog(MethodView):
    @require_role("admin")
    @blp.arguments(AuditLogArgsSchema, location="query")
    @blp.response(200, page_schema(AuditLogEntrySchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List audit entries, newest first; filters combine with AND."""
        statement = select(AuditLogEntry)
        for name in _EXACT_FILTERS:
            if args.get(name) is not None:
                statement = statement.where(getattr(AuditLogEntry, name) == args[name])
        if args.get("since") is not None:
            statement = statement.where(AuditLogEntry.occurred_at >= args["since"])
        if args.get("until") is not None:
            statement = statement.where(AuditLogEntry.occurred_at < args["until"])
        return paginate(request_session(), statement, limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(AuditLogEntry.occurred_at.desc(), AuditLogEntry.id.desc()))
