"""Schemas of workflow instances, their steps, and the execute / list / control requests."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.pagination import PaginationArgsSchema
from api.schemas.common import InputSchema, UtcDateTime
from engine.statuses import InstanceStatus, Priority


class ExecuteSchema(InputSchema):
    input = fields.Dict(keys=fields.String(), load_default=dict)
    priority = fields.String(load_default=Priority.NORMAL.value,
                             validate=validate.OneOf([p.value for p in Priority]))
    idempotency_key = fields.String(allow_none=True, validate=validate.Length(min=1, max=255))


class InstanceListArgsSchema(PaginationArgsSchema):
    workflow_id = fields.UUID()
    status = fields.String(validate=validate.OneOf([s.value for s in InstanceStatus]))


class InstanceSchema(Schema):
    id = fields.UUID(required=True)
    workflow_id = fields.UUID(allow_none=True)
    workflow_version_id = fields.UUID(allow_none=True)
    status = fields.String(required=True)
    priority = fields.String(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    paused_at = UtcDateTime(allow_none=True)
    deadline_at = UtcDateTime(allow_none=True)
    progress = fields.Integer(allow_none=True)
    current_step = fields.String(allow_none=True)
    execution_context = fields.Dict(allow_none=True)
    output_data = fields.Raw(allow_none=True)
    error_details = fields.String(allow_none=True)
    triggered_by = fields.String(allow_none=True)
    trigger_source = fields.String(allow_none=True)
    execution_metrics = fields.Dict(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    parent_execution_id = fields.UUID(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class StepSchema(Schema):
    id = fields.UUID(required=True)
    instance_id = fields.UUID()
    node_id = fields.String()
    step_type = fields.String()
    status = fields.String()
    input_data = fields.Raw(allow_none=True)
    output_data = fields.Raw(allow_none=True)
    error_message = fields.String(allow_none=True)
    retry_count = fields.Integer(allow_none=True)
    max_retries = fields.Integer(allow_none=True)
    attempt = fields.Integer()
    selected_handle = fields.String(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    run_after = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()


class DetailApprovalSchema(Schema):
    id = fields.UUID()
    execution_id = fields.UUID(allow_none=True)
    approver_role = fields.String()
    approver_user_id = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    requested_at = UtcDateTime(allow_none=True)
    responded_at = UtcDateTime(allow_none=True)
    expires_at = UtcDateTime(allow_none=True)
    approval_message = fields.String(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    approval_data = fields.Raw(allow_none=True)


class DetailNotificationSchema(Schema):
    id = fields.UUID()
    instance_id = fields.UUID(allow_none=True)
    execution_id = fields.UUID(allow_none=True)
    notification_type = fields.String()
    channel = fields.String()
    recipients = fields.Raw(allow_none=True)
    subject = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    sent_at = UtcDateTime(allow_none=True)
    error_details = fields.String(allow_none=True)
    retry_count = fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class InstanceDetailsSchema(InstanceSchema):
    steps = fields.List(fields.Nested(StepSchema))
    approvals = fields.List(fields.Nested(DetailApprovalSchema))
    notifications = fields.List(fields.Nested(DetailNotificationSchema))
