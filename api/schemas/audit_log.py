"""Query arguments and entries of GET /api/audit-log (read-only)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.pagination import PaginationArgsSchema
from api.schemas.common import UtcDateTime

OUTCOMES = ("success", "failure", "denied", "error")


class AuditLogArgsSchema(PaginationArgsSchema):
    actor = fields.String(validate=validate.Length(min=1, max=100))
    action = fields.String(validate=validate.Length(min=1, max=100),
                           metadata={"description": "exact action, e.g. `POST /api/secrets`"})
    resource_type = fields.String(validate=validate.Length(min=1, max=50))
    resource_id = fields.String(validate=validate.Length(min=1, max=100))
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    since = fields.AwareDateTime(default_timezone=None,
                                 metadata={"description": "ISO 8601 with a time zone"})
    until = fields.AwareDateTime(default_timezone=None)


class AuditLogEntrySchema(Schema):
    id = fields.Integer(required=True)
    occurred_at = UtcDateTime(required=True)
    actor = fields.String(allow_none=True)
    action = fields.String(required=True)
    resource_type = fields.String(allow_none=True)
    resource_id = fields.String(allow_none=True)
    outcome = fields.String(required=True)
    status_code = fields.Integer(allow_none=True)
    request_id = fields.String(allow_none=True)
    client_address = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
