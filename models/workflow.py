"""Workflow definitions: workflows, their saved versions, the nodes/edges mirror, triggers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from engine.statuses import TriggerType
from models.base import Base, created_at_column, status_check, updated_at_column, uuid_pk


class Workflow(Base):
    __tablename__ = "workflows"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100), server_default="custom")
    version: Mapped[str | None] = mapped_column(String(20), server_default="1.0.0")
    workflow_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default="true")
    is_template: Mapped[bool | None] = mapped_column(Boolean, server_default="false")
    tags: Mapped[list[str] | None] = mapped_column(JSONB)
    configuration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str | None] = mapped_column(String(100), index=True)
    updated_by: Mapped[str | None] = mapped_column(String(100))
    # The workflow_versions row holding the current definition; instances pin their own.
    current_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_versions.id", use_alter=True, ondelete="SET NULL"), index=True
    )
    # Set on built-in library templates so a fresh install can seed them exactly once.
    builtin_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        Index("ix_workflows_created_at", "created_at"),
        Index("ix_workflows_is_template_category", "is_template", "category"),
        Index("ix_workflows_name", "name"),
    )


class WorkflowVersion(Base):
    """An immutable snapshot of a workflow definition; instances run exactly one of these."""

    __tablename__ = "workflow_versions"

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[str] = mapped_column(String(20), nullable=False)
    workflow_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    configuration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (UniqueConstraint("workflow_id", "revision"),)


class WorkflowNode(Base):
    __tablename__ = "workflow_nodes"

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    node_id: Mapped[str] = mapped_column(String(100), nullable=False)
    node_type: Mapped[str] = mapped_column(String(50), nullable=False)
    label: Mapped[str] = mapped_column(String(255), nullable=False)
    position_x: Mapped[int] = mapped_column(Integer, nullable=False)
    position_y: Mapped[int] = mapped_column(Integer, nullable=False)
    configuration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    is_enabled: Mapped[bool | None] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (UniqueConstraint("workflow_id", "node_id"),)


class WorkflowEdge(Base):
    __tablename__ = "workflow_edges"

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    edge_id: Mapped[str] = mapped_column(String(100), nullable=False)
    source_node_id: Mapped[str] = mapped_column(String(100), nullable=False)
    target_node_id: Mapped[str] = mapped_column(String(100), nullable=False)
    source_handle: Mapped[str | None] = mapped_column(String(50))
    target_handle: Mapped[str | None] = mapped_column(String(50))
    edge_type: Mapped[str | None] = mapped_column(String(50), server_default="smoothstep")
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    is_enabled: Mapped[bool | None] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (UniqueConstraint("workflow_id", "edge_id"),)


class WorkflowTrigger(Base):
    __tablename__ = "workflow_triggers"

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    trigger_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_source: Mapped[str | None] = mapped_column(String(100))
    configuration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default="true")
    last_triggered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trigger_count: Mapped[int | None] = mapped_column(Integer, server_default="0")
    # Schedules: the next due time, claimed atomically so several schedulers fire it once.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        status_check("trigger_type", TriggerType, "trigger_type_valid"),
        Index("ix_workflow_triggers_created_at", "created_at"),
        Index("ix_workflow_triggers_trigger_type_is_active", "trigger_type", "is_active"),
    )
