"""Request and response bodies of /api/secrets. No response schema has a value field."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.pagination import PaginationArgsSchema
from api.schemas.common import InputSchema, UtcDateTime
from models.secret_store import MAX_SECRET_BYTES, SECRET_NAME_PATTERN

SECRET_NAME = validate.Regexp(
    SECRET_NAME_PATTERN,
    error="a secret name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or '_'",
)


class SecretCreateSchema(InputSchema):
    name = fields.String(required=True, validate=SECRET_NAME)
    value = fields.String(required=True, load_only=True,
                          validate=validate.Length(min=1, max=MAX_SECRET_BYTES),
                          metadata={"description": "write-only; never returned"})
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))


class SecretSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class SecretListArgsSchema(PaginationArgsSchema):
    pass
