"""SQLAlchemy models, session factory, settings and query functions (they never commit)."""

from models.approval import WorkflowApproval, WorkflowNotification
from models.base import Base
from models.instance import WorkflowExecution, WorkflowInstance
from models.security import ApiToken, AuditLogEntry, Secret
from models.workflow import (
    Workflow,
    WorkflowEdge,
    WorkflowNode,
    WorkflowTrigger,
    WorkflowVersion,
)

metadata = Base.metadata

__all__ = [
    "ApiToken",
    "AuditLogEntry",
    "Base",
    "Secret",
    "Workflow",
    "WorkflowApproval",
    "WorkflowEdge",
    "WorkflowExecution",
    "WorkflowInstance",
    "WorkflowNode",
    "WorkflowNotification",
    "WorkflowTrigger",
    "WorkflowVersion",
    "metadata",
]
