"""Fields and base classes shared by the API schemas (UTC timestamps with `Z`, strict input).

Must not hold resource-specific fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with a `Z` suffix, e.g. 2026-11-25T21:00:00.123456Z."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            return str(super()._serialize(value, attr, obj, **kwargs))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # database values are stored as UTC
        text: str = value.astimezone(UTC).isoformat()
        return text.replace("+00:00", "Z")


class InputSchema(Schema):
    """Base of every request-body and query schema: unknown fields are a 422."""

    class Meta:
        unknown = RAISE


def no_nul(value: str) -> None:
    """PostgreSQL text cannot hold NUL; refuse it as a 422 instead of a database error."""
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")
