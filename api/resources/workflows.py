"""/api/workflows: list, create, read, update and delete workflow definitions (CONTRACT §1, §7).

Reads need viewer, writes editor. Every write validates the whole document first (422 listing
every problem, nothing stored) and keeps versions and the nodes/edges mirror in the same
transaction (api.workflow_store). Must not start executions (see the execution endpoints).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from sqlalchemy import Select, select

from api.audit import set_audit_resource
from api.auth import current_principal, require_role
from api.blueprint import Blueprint
from api.context import app_state, request_session
from api.errors import NotFoundError
from api.pagination import page_schema, paginate
from api.schemas.workflows import (
    WorkflowDeleteArgsSchema,
    WorkflowInputSchema,
    WorkflowListArgsSchema,
    WorkflowSchema,
    WorkflowUpdateSchema,
)
from api.workflow_store import (
    create_workflow,
    delete_workflow,
    update_workflow,
    validate_definition,
)
from models.workflow import Workflow

blp = Blueprint("workflows", __name__, url_prefix="/api/workflows",
                description="Workflow definitions")


def get_workflow(session: Any, workflow_id: uuid.UUID, *, for_update: bool = False) -> Workflow:
    """The workflow with this id.

    Raises:
        NotFoundError: there is none.
    """
    workflow: Workflow | None = session.get(Workflow, workflow_id, with_for_update=for_update)
    if workflow is None:
        raise NotFoundError(f"no workflow {workflow_id}")
    return workflow


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(args: dict[str, Any]) -> Select[Any]:
    statement = select(Workflow)
    if "category" in args:
        statement = statement.where(Workflow.category == args["category"])
    if "is_active" in args:
        statement = statement.where(Workflow.is_active.is_(args["is_active"]))
    if "is_template" in args:
        statement = statement.where(Workflow.is_template.is_(args["is_template"]))
    if "q" in args:
        statement = statement.where(
            Workflow.name.ilike(f"%{_escape_like(args['q'])}%", escape="\\"))
    return statement


def _validate(body: dict[str, Any], current: Workflow | None = None) -> None:
    if current is not None and not ("workflow_data" in body or "configuration" in body):
        return  # metadata only: the stored definition was valid when saved
    state = app_state()
    workflow_data = body.get("workflow_data", current.workflow_data if current else None)
    configuration = body.get("configuration", current.configuration if current else None)
    validate_definition(workflow_data, configuration, node_types=state.node_types,
                        settings=state.settings)


@blp.route("")
class Workflows(MethodView):
    @require_role("viewer")
    @blp.arguments(WorkflowListArgsSchema, location="query")
    @blp.response(200, page_schema(WorkflowSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List workflows, newest first; filter by category, is_active, is_template, q (name)."""
        return paginate(request_session(), _filtered(args), limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(Workflow.created_at.desc(), Workflow.id.desc()))

    @require_role("editor")
    @blp.arguments(WorkflowInputSchema)
    @blp.response(201, WorkflowSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY",
                      description="every problem of the document in details.problems")
    def post(self, body: dict[str, Any]) -> Workflow:
        """Create a workflow (422 with every problem of the document; nothing is stored)."""
        _validate(body)
        session = request_session()
        workflow = create_workflow(session, body, current_principal().name)
        session.commit()
        set_audit_resource("workflows", workflow.id, {"name": workflow.name})
        return workflow


@blp.route("/<uuid:workflow_id>")
class WorkflowById(MethodView):
    @require_role("viewer")
    @blp.response(200, WorkflowSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, workflow_id: uuid.UUID) -> Workflow:
        """One workflow with its document exactly as saved."""
        return get_workflow(request_session(), workflow_id)

    @require_role("editor")
    @blp.arguments(WorkflowUpdateSchema)
    @blp.response(200, WorkflowSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY",
                      description="every problem of the document in details.problems")
    def put(self, body: dict[str, Any], workflow_id: uuid.UUID) -> Workflow:
        """Update a workflow. Fields left out keep their value; a changed document or
        configuration is a new version (patch number + 1 unless `version` is given)."""
        session = request_session()
        workflow = get_workflow(session, workflow_id, for_update=True)
        _validate(body, workflow)
        update_workflow(session, workflow, body, current_principal().name)
        session.commit()
        session.refresh(workflow)
        return workflow

    @require_role("editor")
    @blp.arguments(WorkflowDeleteArgsSchema, location="query")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the workflow has instances")
    def delete(self, args: dict[str, Any], workflow_id: uuid.UUID) -> None:
        """Delete a workflow; one with instances needs `?cascade=true` (else 409)."""
        session = request_session()
        workflow = get_workflow(session, workflow_id, for_update=True)
        deleted = delete_workflow(session, workflow, cascade=args["cascade"])
        session.commit()
        if deleted:
            set_audit_resource("workflows", workflow_id, {"cascaded_instances": deleted})
