"""Request and response bodies of /api/tokens. Must never expose a token hash."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import InputSchema, UtcDateTime

ROLE_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
ROLE_NAME = validate.Regexp(ROLE_PATTERN,
                            error="role names are 1-100 letters, digits, '_', '.', ':' or '-'")


class TokenCreateSchema(InputSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    roles = fields.List(fields.String(validate=ROLE_NAME), required=True,
                        validate=validate.Length(min=1, max=50))


class TokenSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    prefix = fields.String(metadata={"description": "first characters of the token"})
    created_by = fields.String(allow_none=True)
    created_at = UtcDateTime()
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(required=True, metadata={"description": "shown once, never again"})
