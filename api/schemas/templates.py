"""Bodies of the template endpoints and of portable documents (`flowyard.workflow/v1`)."""

from __future__ import annotations

from marshmallow import fields, validate

from api.pagination import PaginationArgsSchema
from api.portable import FORMAT
from api.schemas.common import InputSchema
from api.schemas.triggers import TriggerCreateSchema
from api.schemas.workflows import WorkflowInputSchema


class TemplateListArgsSchema(PaginationArgsSchema):
    category = fields.String(validate=validate.Length(min=1, max=100))


class InstantiateSchema(InputSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))


class PortableTriggerSchema(TriggerCreateSchema):
    """A trigger in a portable document; it is inactive unless the document says otherwise."""

    is_active = fields.Boolean(load_default=False)


class PortableDocumentSchema(WorkflowInputSchema):
    """A workflow create body plus `format`, the informative `revision` and `triggers`."""

    format = fields.String(required=True, validate=validate.Equal(FORMAT))
    revision = fields.Integer(validate=validate.Range(min=1))
    triggers = fields.List(fields.Nested(PortableTriggerSchema), load_default=list)
