"""/api/approvals: list approvals and decide them (approve / reject) by the approver's role.

Listing needs `viewer`. Deciding needs a token holding the approval's `approver_role` (or
`admin`): any other caller gets 403 and the approval stays pending; a decided or expired
approval answers 409. A decision records who (the token's name) and when, resumes the
waiting step through its `approved` / `rejected` handle, and is audited like every POST.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from api.after_commit import after_commit
from api.audit import set_audit_resource
from api.auth import current_principal, require_any_token, require_role
from api.blueprint import Blueprint
from api.context import request_session, worker_runtime
from api.errors import ConflictError, ForbiddenError, NotFoundError
from api.pagination import page_schema, paginate
from api.schemas.approvals import (
    ApprovalListArgsSchema,
    ApprovalSchema,
    ApproveSchema,
    RejectSchema,
)
from models.approval import WorkflowApproval
from models.approvals import Decision, approvals_query, find_approval
from models.instance import WorkflowExecution
from worker.gateway import record_decision, resume_after_commit

blp = Blueprint("approvals", __name__, url_prefix="/api/approvals",
                description="Human approvals: list, approve, reject")



@blp.route("")
class Approvals(MethodView):
    @require_role("viewer")
    @blp.arguments(ApprovalListArgsSchema, location="query")
    @blp.response(200, page_schema(ApprovalSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List approvals, newest first (`?status=pending&role=&instance_id=`)."""
        session = request_session()
        statement = approvals_query(status=args.get("status"), role=args.get("role"),
                                    instance_id=args.get("instance_id"))
        page = paginate(session, statement, limit=args["limit"], offset=args["offset"],
                        newest_first=(WorkflowApproval.created_at.desc(),
                                      WorkflowApproval.id.desc()))
        page["items"] = _with_steps(page["items"])
        return page


@blp.route("/<uuid:approval_id>")
class ApprovalById(MethodView):
    @require_role("viewer")
    @blp.response(200, ApprovalSchema)
    def get(self, approval_id: uuid.UUID) -> dict[str, Any]:
        """One approval."""
        return _with_steps([_get(approval_id)])[0]


@blp.route("/<uuid:approval_id>/approve")
class Approve(MethodView):
    @require_any_token()
    @blp.arguments(ApproveSchema)
    @blp.response(200, ApprovalSchema)
    def post(self, body: dict[str, Any], approval_id: uuid.UUID) -> dict[str, Any]:
        """Approve: the flow continues through the `approved` handle."""
        return _decide(approval_id, approved=True, comment=body.get("comment"))


@blp.route("/<uuid:approval_id>/reject")
class Reject(MethodView):
    @require_any_token()
    @blp.arguments(RejectSchema)
    @blp.response(200, ApprovalSchema)
    def post(self, body: dict[str, Any], approval_id: uuid.UUID) -> dict[str, Any]:
        """Reject: the flow continues through the `rejected` handle."""
        return _decide(approval_id, approved=False, comment=body.get("reason"))


def _get(approval_id: uuid.UUID) -> WorkflowApproval:
    approval = find_approval(request_session(), approval_id)
    if approval is None:
        raise NotFoundError(f"no approval {approval_id}")
    return approval


def _decide(approval_id: uuid.UUID, *, approved: bool, comment: str | None) -> dict[str, Any]:
    session = request_session()
    approval = _get(approval_id)
    principal = current_principal()
    if not principal.can_approve(approval.approver_role):
        raise ForbiddenError(
            f"deciding this approval needs the role {approval.approver_role!r} (or admin)")
    runtime = worker_runtime()
    decision, after = record_decision(session, runtime, approval_id, approved=approved,
                                      decided_by=principal.name, comment=comment)
    if decision is None:
        session.rollback()
        current = _get(approval_id)
        state = "expired" if current.status in ("pending", "expired") else current.status
        raise ConflictError(f"approval {approval_id} is already {state}",
                            details={"status": current.status})
    _show_decided(approval, decision)
    # Read before the commit (a step's ids never change): after it, the call has succeeded,
    # and a database failure must not answer 500 (`api.after_commit`).
    (answer,) = _with_steps([approval])
    session.commit()
    set_audit_resource("approvals", approval_id,
                       {"decision": decision.status, "approver_role": approval.approver_role})
    after_commit(f"decision on approval {approval_id}",
                 lambda: resume_after_commit(runtime, after), None)
    return answer


def _show_decided(approval: WorkflowApproval, decision: Decision) -> None:
    """What the decision wrote (`models.approvals.decide_approval`), set on the entity as
    if read."""
    for name in ("status", "approver_user_id", "comment", "rejection_reason",
                 "responded_at"):
        set_committed_value(approval, name, getattr(decision, name))
    # Both are the transaction's now().
    set_committed_value(approval, "updated_at", decision.responded_at)


def _with_steps(approvals: list[Any]) -> list[dict[str, Any]]:
    """Approval rows as dicts plus their step's instance_id and node_id."""
    ids = {a.execution_id for a in approvals if a.execution_id is not None}
    steps = dict(
        (row[0], (row[1], row[2])) for row in request_session().execute(
            select(WorkflowExecution.id, WorkflowExecution.instance_id, WorkflowExecution.node_id)
            .where(WorkflowExecution.id.in_(ids))).all()
    ) if ids else {}
    items = []
    for approval in approvals:
        item = {column: getattr(approval, column)
                for column in WorkflowApproval.__table__.columns.keys()}
        item["instance_id"], item["node_id"] = steps.get(approval.execution_id, (None, None))
        items.append(item)
    return items


