"""/api/secrets: list names, create or replace, delete; editor and up. Values never leave.

A value goes in through POST and is stored encrypted (models.secret_store); no response, log
line, audit row or error message carries it.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from api.audit import set_audit_resource
from api.auth import current_principal, require_role
from api.blueprint import Blueprint
from api.context import app_state, request_session
from api.errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from api.pagination import page_schema, paginate
from api.schemas.secrets import SecretCreateSchema, SecretListArgsSchema, SecretSchema
from models.secret_store import (
    InvalidSecretError,
    MissingSecretKeyError,
    delete_secret,
    put_secret,
)
from models.security import Secret

blp = Blueprint("secrets", __name__, url_prefix="/api/secrets",
                description="Encrypted secrets referenced as {\"$secret\": \"NAME\"} (editor+)")


@blp.route("")
class Secrets(MethodView):
    @require_role("editor")
    @blp.arguments(SecretListArgsSchema, location="query")
    @blp.response(200, page_schema(SecretSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List secrets (names and metadata only), newest first."""
        return paginate(request_session(), select(Secret), limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(Secret.created_at.desc(), Secret.name))

    @require_role("editor")
    @blp.arguments(SecretCreateSchema)
    @blp.response(201, SecretSchema)
    @blp.alt_response(200, schema=SecretSchema, description="an existing secret was replaced")
    def post(self, body: dict[str, Any]) -> tuple[Secret, int]:
        """Create a secret, or replace the value of an existing one (201 created, 200 replaced)."""
        session = request_session()
        set_audit_resource("secrets", body["name"])
        try:
            secret, created = put_secret(
                session, app_state().settings, body["name"], body["value"],
                description=body.get("description"), actor=current_principal().name,
            )
        except MissingSecretKeyError:
            raise ServiceUnavailableError(
                "secrets are disabled: the server has no FLOWYARD_SECRET_KEYS configured"
            ) from None
        except InvalidSecretError as error:
            raise UnprocessableError(str(error)) from None
        session.commit()
        set_audit_resource("secrets", secret.name, {"created": created})
        return secret, 201 if created else 200


@blp.route("/<string:name>")
class SecretByName(MethodView):
    @require_role("editor")
    @blp.response(204)
    def delete(self, name: str) -> None:
        """Delete a secret; workflows that reference it fail at their next use."""
        session = request_session()
        set_audit_resource("secrets", name[:100])
        if not delete_secret(session, name):
            raise NotFoundError(f"no secret named {name[:100]!r}")
        session.commit()
        return None
