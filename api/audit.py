"""The audit trail: one append-only audit_log row per mutating /api call, written in one place.

Owns: the after-request hook that records actor, action, resource, outcome, status code,
request id and client address for every POST/PUT/PATCH/DELETE under /api (denied ones too),
and `set_audit_resource` for endpoints to name what they touched. It writes on its own,
after the request session is closed, so a rolled-back request is still recorded. An
endpoint may instead write the row with its own work (`audit_entry`, then
`audit_written_with_work` once that committed): one commit, not two, on a hot path.
Must never update or delete audit rows.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, g, request

from api.auth import MUTATING_METHODS, find_principal
from api.context import app_state, close_request_session, request_connection
from models.driver_sql import jsonb, run
from models.security import INSERT_AUDIT_ENTRY

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"


def set_audit_resource(resource_type: str, resource_id: object,
                       details: dict[str, Any] | None = None) -> None:
    """Name the resource this request acted on (e.g. the id of a just-created workflow)."""
    g.audit_resource = (resource_type, str(resource_id))
    if details:
        g.audit_details = details


def clear_audit_resource() -> None:
    """Forget what `set_audit_resource` named: the work it was named for did not happen."""
    g.pop("audit_resource", None)
    g.pop("audit_details", None)


def _assign_request_id() -> None:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    # Accept a caller's id only if it is short and printable; it lands in the database.
    if supplied and len(supplied) <= 64 and supplied.isprintable():
        g.request_id = supplied
    else:
        g.request_id = uuid.uuid4().hex


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    if status < 400:
        return "success"
    return "failure" if status < 500 else "error"


def _resource() -> tuple[str | None, str | None]:
    named = g.get("audit_resource")
    if named is not None:
        return named  # type: ignore[no-any-return]
    parts = request.path.split("/")
    resource_type = parts[2] if len(parts) > 2 and parts[2] else None
    view_args = request.view_args or {}
    resource_id = next(iter(view_args.values()), None) if view_args else None
    return resource_type, (str(resource_id) if resource_id is not None else None)


def _action() -> str:
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    return f"{request.method} {rule}"[:100]


def _write(entry: dict[str, Any]) -> None:
    """Insert the row, committed on its own.

    Plain SQL: the ORM's unit of work, and then Core's statement handling, cost more than
    the write itself on every mutating call. On the request connection, one autocommit
    statement: one round trip, where a transaction takes three (BEGIN, INSERT, COMMIT).
    Without one (sessions bound to a connection an outer transaction owns), a transaction
    within that.
    """
    connection = request_connection()
    if connection is not None:
        run(connection, INSERT_AUDIT_ENTRY, entry)
        return
    with app_state().session_factory() as session, session.begin():
        run(session, INSERT_AUDIT_ENTRY, entry)


def audit_entry(status_code: int) -> dict[str, Any]:
    """This request's audit row, as if it answered `status_code` with the resource and
    details it has named so far (`set_audit_resource`); `details` not yet JSONB.

    For an endpoint that writes the row with its own work, so that it commits or rolls
    back with it; it calls `audit_written_with_work` once that committed. The row then
    records what the work did even if the answer later fails.
    """
    principal = find_principal()
    resource_type, resource_id = _resource()
    return dict(
        actor=principal.name if principal else None,
        action=_action(),
        resource_type=(resource_type or "")[:50] or None,
        resource_id=(resource_id or "")[:100] or None,
        outcome=_outcome(status_code),
        status_code=status_code,
        request_id=g.get("request_id"),
        client_address=(request.remote_addr or "")[:64] or None,
        details=g.get("audit_details"),
    )


def audit_written_with_work() -> None:
    """This request's audit row committed with its work (`audit_entry`): write no other."""
    g.audit_written = True


def _record(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    # Failed authentications are recorded on every method: they are login failures.
    audited = request.method in MUTATING_METHODS or response.status_code == 401
    if not audited or not request.path.startswith("/api/") or g.get("audit_written"):
        return response
    # Close the request's session first: its uncommitted work must not carry the audit row
    # with it when it rolls back.
    close_request_session()
    entry = audit_entry(response.status_code)
    try:
        _write({**entry, "details": jsonb(entry["details"])})
    except Exception:  # the response is already decided; losing the row must not hide it
        logger.exception("could not write the audit row for %s %s", request.method,
                         request.path)
    return response


def init_audit(app: Flask) -> None:
    # Runs before authentication so denied requests carry a request id too.
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.after_request(_record)
