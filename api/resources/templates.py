"""Templates and portable documents: list/instantiate templates, export and import workflows.

GET /api/templates?category=, POST /api/templates/:id/instantiate {name},
GET /api/workflows/:id/export (`flowyard.workflow/v1`, no ids, timestamps or secret values),
POST /api/workflows/import (validated like a create). Must not copy a secret value anywhere:
an instantiated or imported webhook trigger has no secret and starts inactive.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import set_audit_resource
from api.auth import current_principal, require_role
from api.context import app_state, request_session
from api.errors import NotFoundError
from api.pagination import page_schema, paginate
from api.portable import export_document
from api.schemas.templates import (
    InstantiateSchema,
    PortableDocumentSchema,
    TemplateListArgsSchema,
)
from api.schemas.workflows import WorkflowSchema
from api.templates_seed import store_document
from models.triggers import list_triggers
from models.workflow import Workflow, WorkflowVersion

blp = Blueprint("templates", __name__, url_prefix="/api",
                description="Workflow templates, export and import")


def _workflow_or_404(session: Session, workflow_id: uuid.UUID, *,
                     template: bool = False) -> Workflow:
    workflow = session.get(Workflow, workflow_id)
    if workflow is None or (template and not workflow.is_template):
        raise NotFoundError(f"no {'template' if template else 'workflow'} {workflow_id}")
    return workflow


def portable_of(session: Session, workflow: Workflow) -> dict[str, Any]:
    revision = None
    if workflow.current_version_id is not None:
        revision = session.scalar(select(WorkflowVersion.revision)
                                  .where(WorkflowVersion.id == workflow.current_version_id))
    return export_document(workflow, list(reversed(list_triggers(session, workflow.id))),
                           revision=revision)


def _store(document: dict[str, Any], overrides: dict[str, Any] | None = None) -> Workflow:
    state = app_state()
    session = request_session()
    workflow = store_document(session, document, actor=current_principal().name,
                              settings=state.settings, node_types=state.node_types,
                              overrides=overrides)
    session.commit()
    return workflow


@blp.route("/templates")
class Templates(MethodView):
    @require_role("viewer")
    @blp.arguments(TemplateListArgsSchema, location="query")
    @blp.response(200, page_schema(WorkflowSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Workflows marked `is_template`, newest first; `?category=` filters."""
        statement = select(Workflow).where(Workflow.is_template.is_(True))
        if "category" in args:
            statement = statement.where(Workflow.category == args["category"])
        return paginate(request_session(), statement, limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(Workflow.created_at.desc(), Workflow.id.desc()))


@blp.route("/templates/<uuid:template_id>/instantiate")
class Instantiate(MethodView):
    @require_role("editor")
    @blp.arguments(InstantiateSchema)
    @blp.response(201, WorkflowSchema)
    def post(self, body: dict[str, Any], template_id: uuid.UUID) -> Workflow:
        """A new active workflow (not a template) copied from the template, named `name`.

        The template's triggers are copied inactive and without secrets.
        """
        session = request_session()
        template = _workflow_or_404(session, template_id, template=True)
        document = PortableDocumentSchema().load(portable_of(session, template))
        for trigger in document["triggers"]:
            trigger["is_active"] = False
        workflow = _store(document, {"name": body["name"], "is_template": False,
                                     "is_active": True})
        set_audit_resource("workflows", workflow.id, {"template_id": str(template_id)})
        return workflow


@blp.route("/workflows/<uuid:workflow_id>/export")
class Export(MethodView):
    @require_role("viewer")
    @blp.response(200, PortableDocumentSchema)
    def get(self, workflow_id: uuid.UUID) -> dict[str, Any]:
        """The portable document of a workflow and its triggers (no ids, no secret values)."""
        session = request_session()
        return portable_of(session, _workflow_or_404(session, workflow_id))


@blp.route("/workflows/import")
class Import(MethodView):
    @require_role("editor")
    @blp.arguments(PortableDocumentSchema)
    @blp.response(201, WorkflowSchema)
    def post(self, document: dict[str, Any]) -> Workflow:
        """Create a workflow (and its triggers) from a portable document; 422 like a create."""
        workflow = _store(document)
        set_audit_resource("workflows", workflow.id, {"imported": True})
        return workflow
