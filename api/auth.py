"""Bearer-token authentication and role checks, in one place for every /api endpoint.

Owns: token generation and hashing, `Principal`, the role ladder, `require_role` /
`require_any_token` (which only *declare* an endpoint's role) and the before-request hook that
authenticates and enforces the declared role before any argument parsing. An endpoint that
declares no role is refused (fail closed). Must not store or log a token in clear.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy import Connection, func, or_, text, update
from sqlalchemy.orm import Session

from api.context import request_connection, request_session
from api.errors import ForbiddenError, UnauthorizedError
from models.driver_sql import fetch_one
from models.security import ApiToken

# Built-in roles from least to most powerful; each includes everything below it.
ROLE_LADDER = ("viewer", "operator", "editor", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLE_LADDER)}
# Marker for endpoints open to any valid token (the endpoint checks further itself).
ANY_TOKEN = "*"
_ROLE_ATTRIBUTE = "_flowyard_required_role"
# Paths under /api that do not take a bearer token: webhooks carry their trigger's secret,
# and the API description is public documentation without data.
PUBLIC_PREFIXES = ("/api/hooks/", "/api/openapi.json", "/api/docs")
TOKEN_PREFIX_LENGTH = 8

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id and name and its roles."""

    token_id: str
    name: str
    roles: frozenset[str]

    def has_role(self, required: str) -> bool:
        """True when the roles include `required`, by the ladder for built-in roles.

        Any other role name is an approval role: held literally, or implied by admin.
        """
        if required == ANY_TOKEN:
            return True
        ranks = [_RANK[role] for role in self.roles if role in _RANK]
        best = max(ranks, default=-1)
        if required in _RANK:
            return best >= _RANK[required]
        return required in self.roles or best >= _RANK["admin"]

    def can_approve(self, approver_role: str) -> bool:
        """Whether this caller may decide an approval that asks for `approver_role`."""
        return approver_role in self.roles or "admin" in self.roles


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, *, name: str, roles: list[str],
                created_by: str | None = None) -> tuple[ApiToken, str]:
    """Create a token row (flushed, not committed) and return it with the clear token.

    The clear token exists only in the return value: only its SHA-256 is stored.
    """
    token = generate_token()
    row = ApiToken(name=name, roles=list(dict.fromkeys(roles)), token_hash=hash_token(token),
                   prefix=token[:TOKEN_PREFIX_LENGTH], created_by=created_by,
                   created_at=func.clock_timestamp())
    session.add(row)
    session.flush()
    return row, token


def require_role(role: str) -> Callable[[F], F]:
    """Declare the least role an endpoint needs (enforced before the request is parsed)."""

    def mark(view: F) -> F:
        setattr(view, _ROLE_ATTRIBUTE, role)
        return view

    return mark


def require_any_token() -> Callable[[F], F]:
    """Declare an endpoint open to every valid token (e.g. approvals, checked inside)."""
    return require_role(ANY_TOKEN)


def current_principal() -> Principal:
    """The authenticated caller of this request.

    Raises:
        UnauthorizedError: outside an authenticated request.
    """
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise UnauthorizedError()
    return principal


def find_principal() -> Principal | None:
    """The caller if authenticated, else None (for audit of denied calls)."""
    return g.get("principal")


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _stale_use() -> Any:
    """True when `last_used_at` is unset or over a minute old (by the database clock)."""
    return or_(ApiToken.last_used_at.is_(None),
               ApiToken.last_used_at < func.now() - text("interval '1 minute'"))


# The methods that change state; each such call under /api is audited (api.audit).
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# This runs on every request: plain SQL on the driver (models.driver_sql), as an entity or
# even a Core statement costs more CPU to build and read than the lookup itself. `stale`
# is `_stale_use()`.
_FIND_TOKEN = f"""
    SELECT id, name, roles,
           (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale
      FROM {ApiToken.__tablename__}
     WHERE token_hash = %(token_hash)s AND revoked_at IS NULL
"""


def _load_principal(token: str) -> Principal | None:
    connection = _lookup_connection()
    executor = connection if connection is not None else request_session()
    found = fetch_one(executor, _FIND_TOKEN, {"token_hash": hash_token(token)})
    if found is None:
        return None
    token_id, name, roles, stale = found
    if stale:
        _record_use(connection, token_id)
    return Principal(token_id=str(token_id), name=name, roles=frozenset(roles))


def _lookup_connection() -> Connection | None:
    """Where the token lookup runs: the request connection for a call that changes state,
    as its audit row takes that connection anyway (api.audit), so the lookup needs no
    transaction to begin or roll back; None (the request session) for a read, whose own
    queries use the session: a second pooled connection would cost it more than the
    lookup's BEGIN saves."""
    return request_connection() if request.method in MUTATING_METHODS else None


def _record_use(connection: Connection | None, token_id: Any) -> None:
    """Set `last_used_at` at most once a minute per token, committed at once.

    Only stale tokens get here, so most requests write nothing; the condition is repeated in
    the UPDATE so concurrent requests of one token write it once. On `connection` (the
    lookup's), it commits on its own; on the request session, nothing else is in it yet
    (authentication runs first), so the commit only ends this write.
    """
    statement = (update(ApiToken).where(ApiToken.id == token_id, _stale_use())
                 .values(last_used_at=func.now()))
    if connection is not None:
        connection.execute(statement)
        return
    session = request_session()
    session.execute(statement)
    session.commit()


def _declared_role() -> str | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        method = request.method.lower()
        if method == "head":
            method = "get"
        handler = getattr(view_class, method, None)
        return getattr(handler, _ROLE_ATTRIBUTE, None) if handler else None
    return getattr(view, _ROLE_ATTRIBUTE, None)


def _is_public(path: str) -> bool:
    return not path.startswith("/api/") or path.startswith(PUBLIC_PREFIXES)


def _authenticate_request() -> None:
    if request.method == "OPTIONS" or _is_public(request.path):
        return
    token = _bearer_token()
    if token is None:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
    principal = _load_principal(token)
    if principal is None:
        raise UnauthorizedError("invalid or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
    g.principal = principal
    if request.routing_exception is not None:
        return  # 404/405: let routing report it
    required = _declared_role()
    if required is None:
        raise ForbiddenError("this endpoint declares no role and is closed")
    if not principal.has_role(required):
        raise ForbiddenError(f"requires role {required!r}", details={"required_role": required})


def init_auth(app: Flask) -> None:
    app.before_request(_authenticate_request)
