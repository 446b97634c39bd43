"""Request and response bodies of /api/workflows (CONTRACT §1). `workflow_data` is kept as sent."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.pagination import PaginationArgsSchema
from api.schemas.common import InputSchema, UtcDateTime, no_nul


class WorkflowInputSchema(InputSchema):
    """POST body; PUT takes the same fields, each optional (absent ones keep their value)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True)
    category = fields.String(validate=validate.Length(min=1, max=100))
    version = fields.String(validate=validate.Length(min=1, max=20))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                       validate=validate.Length(max=100))
    is_active = fields.Boolean()
    is_template = fields.Boolean()
    configuration = fields.Dict(keys=fields.String(), allow_none=True)
    workflow_data = fields.Dict(
        keys=fields.String(), required=True,
        metadata={"description": "React Flow document: nodes and edges, stored exactly as sent"},
    )


class WorkflowUpdateSchema(WorkflowInputSchema):
    name = fields.String(validate=validate.Length(min=1, max=255))
    workflow_data = fields.Dict(keys=fields.String())


class WorkflowSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    tags = fields.List(fields.String(), allow_none=True)
    is_active = fields.Boolean(allow_none=True)
    is_template = fields.Boolean(allow_none=True)
    configuration = fields.Dict(allow_none=True)
    workflow_data = fields.Dict(required=True)
    created_by = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class WorkflowListArgsSchema(PaginationArgsSchema):
    category = fields.String(validate=no_nul)
    is_active = fields.Boolean()
    is_template = fields.Boolean()
    q = fields.String(validate=[validate.Length(min=1, max=255), no_nul],
                      metadata={"description": "case-insensitive search in the name"})


class WorkflowDeleteArgsSchema(InputSchema):
    cascade = fields.Boolean(load_default=False,
                             metadata={"description": "also delete the workflow's instances"})
