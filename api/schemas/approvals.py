"""Request and response bodies of /api/approvals and /api/workflow-notifications."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.pagination import PaginationArgsSchema
from api.schemas.common import InputSchema, UtcDateTime
from engine.statuses import ApprovalStatus, NotificationStatus

_TEXT = validate.Length(max=10_000)


class ApprovalListArgsSchema(PaginationArgsSchema):
    status = fields.String(validate=validate.OneOf([s.value for s in ApprovalStatus]))
    role = fields.String(validate=validate.Length(min=1, max=100))
    instance_id = fields.UUID()


class ApproveSchema(InputSchema):
    comment = fields.String(load_default=None, allow_none=True, validate=_TEXT)


class RejectSchema(InputSchema):
    reason = fields.String(load_default=None, allow_none=True, validate=_TEXT)


class ApprovalSchema(Schema):
    id = fields.UUID(required=True)
    execution_id = fields.UUID(allow_none=True, metadata={"description": "the waiting step"})
    instance_id = fields.UUID(allow_none=True)
    node_id = fields.String(allow_none=True)
    approver_role = fields.String(required=True)
    approver_user_id = fields.String(allow_none=True,
                                     metadata={"description": "name of the deciding token"})
    status = fields.String(required=True)
    requested_at = UtcDateTime(allow_none=True)
    responded_at = UtcDateTime(allow_none=True)
    expires_at = UtcDateTime(allow_none=True)
    approval_message = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    approval_data = fields.Raw(allow_none=True)
    notifications_sent = fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class NotificationListArgsSchema(PaginationArgsSchema):
    instance_id = fields.UUID()
    execution_id = fields.UUID()
    status = fields.String(validate=validate.OneOf([s.value for s in NotificationStatus]))


# Keys of notification_data that hold signing keys: never shown.
HIDDEN_NOTIFICATION_DATA = frozenset({"secret", "secret_ciphertext"})


class NotificationSchema(Schema):
    id = fields.UUID(required=True)
    workflow_id = fields.UUID(allow_none=True)
    instance_id = fields.UUID(allow_none=True)
    execution_id = fields.UUID(allow_none=True)
    notification_type = fields.String(required=True)
    channel = fields.String(required=True)
    recipients = fields.List(fields.String(), allow_none=True)
    subject = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    status = fields.String(required=True)
    sent_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    error_details = fields.String(allow_none=True)
    retry_count = fields.Integer(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    next_attempt_at = UtcDateTime(allow_none=True)
    notification_data = fields.Method("_public_data", allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()

    def _public_data(self, row: Any) -> dict[str, Any] | None:
        data = getattr(row, "notification_data", None)
        if not isinstance(data, dict):
            return None
        return {key: value for key, value in data.items()
                if key not in HIDDEN_NOTIFICATION_DATA}
