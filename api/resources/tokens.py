"""/api/tokens: list, create (the token is shown once) and revoke API tokens; admin only.

Must never return or log a token after the creating response.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from sqlalchemy import func, select

from api.audit import set_audit_resource
from api.auth import current_principal, issue_token, require_role
from api.blueprint import Blueprint
from api.context import request_session
from api.errors import NotFoundError
from api.pagination import PaginationArgsSchema, page_schema, paginate
from api.schemas.tokens import TokenCreatedSchema, TokenCreateSchema, TokenSchema
from models.security import ApiToken

blp = Blueprint("tokens", __name__, url_prefix="/api/tokens",
                description="API tokens and their roles (admin only)")


@blp.route("")
class Tokens(MethodView):
    @require_role("admin")
    @blp.arguments(PaginationArgsSchema, location="query")
    @blp.response(200, page_schema(TokenSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List tokens, newest first (never the token itself)."""
        return paginate(request_session(), select(ApiToken), limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(ApiToken.created_at.desc(), ApiToken.id.desc()))

    @require_role("admin")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenCreatedSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a token; the response is the only place the token ever appears."""
        session = request_session()
        row, token = issue_token(session, name=body["name"], roles=body["roles"],
                                 created_by=current_principal().name)
        session.commit()
        set_audit_resource("tokens", row.id, {"name": row.name, "roles": row.roles})
        return {"id": row.id, "name": row.name, "roles": row.roles, "prefix": row.prefix,
                "created_by": row.created_by, "created_at": row.created_at, "token": token}


@blp.route("/<uuid:token_id>")
class TokenById(MethodView):
    @require_role("admin")
    @blp.response(204)
    def delete(self, token_id: uuid.UUID) -> None:
        """Revoke a token; it stops working at once. Revoking twice is harmless."""
        session = request_session()
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = session.scalar(select(func.now()))
        session.commit()
        set_audit_resource("tokens", token_id)
