"""List pagination: `?limit=&offset=` arguments, the page envelope and a query helper.

Owns: `PaginationArgsSchema` (extend it with a list's filters), `page_schema(item_schema)`
for OpenAPI, and `paginate(session, statement, ...)` which counts, orders newest first and
slices. Must not commit or know about any particular resource.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PaginationArgsSchema(Schema):
    """`?limit=` (1-500, default 50) and `?offset=` (default 0); unknown parameters are 422."""

    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


_PAGE_SCHEMAS: dict[str, type[Schema]] = {}


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """The `{"items", "total", "limit", "offset"}` schema for a list of `item_schema`."""
    name = f"{item_schema.__name__.removesuffix('Schema')}PageSchema"
    cached = _PAGE_SCHEMAS.get(name)
    if cached is None:
        cached = Schema.from_dict(
            {
                "items": fields.List(fields.Nested(item_schema), required=True),
                "total": fields.Integer(required=True),
                "limit": fields.Integer(required=True),
                "offset": fields.Integer(required=True),
            },
            name=name,
        )
        _PAGE_SCHEMAS[name] = cached
    return cached


def paginate(session: Session, statement: Select[Any], *, limit: int, offset: int,
             newest_first: tuple[Any, ...]) -> dict[str, Any]:
    """Run `statement` for one page.

    `statement` selects the rows (ORM entities or row tuples) with filters applied but no
    ordering; `newest_first` are the ORDER BY columns (e.g. created_at desc, id desc).
    """
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.scalars(statement.order_by(*newest_first).limit(limit).offset(offset)).all()
    return {"items": list(rows), "total": total or 0, "limit": limit, "offset": offset}
