"""Runtime records: workflow instances and their steps (workflow_executions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from engine.statuses import InstanceStatus, Priority, StepStatus
from models.base import Base, created_at_column, status_check, updated_at_column, uuid_pk


class WorkflowInstance(Base):
    __tablename__ = "workflow_instances"

    id: Mapped[uuid.UUID] = uuid_pk()
    # Indexed by (workflow_id, created_at), which also serves the cascade from workflows.
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    priority: Mapped[str | None] = mapped_column(String(20), server_default="normal")
    started_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress: Mapped[int | None] = mapped_column(Integer, server_default="0")
    current_step: Mapped[str | None] = mapped_column(String(100))
    execution_context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_details: Mapped[str | None] = mapped_column(Text)
    triggered_by: Mapped[str | None] = mapped_column(String(100))
    trigger_source: Mapped[str | None] = mapped_column(String(100))
    execution_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The exact definition this instance runs; later edits of the workflow never change it.
    workflow_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_versions.id", ondelete="SET NULL"), index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # Instance timeout (execution_timeout_ms), set when the instance starts running.
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The subworkflow step that started this instance, if any.
    parent_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_executions.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        status_check("status", InstanceStatus),
        status_check("priority", Priority, "priority_valid"),
        # Every write of an instance row writes each index that holds it: an instance
        # is written three times when it runs (inserted, started, ended). Only rows with a
        # key or a parent are in these two (migration 3c1f0b9e5d27).
        Index("uq_workflow_instances_workflow_id_idempotency_key", "workflow_id",
              "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_workflow_instances_parent_execution_id", "parent_execution_id",
              postgresql_where=text("parent_execution_id IS NOT NULL")),
        Index("ix_workflow_instances_status_created_at", "status", "created_at"),
        Index("ix_workflow_instances_workflow_id_created_at", "workflow_id", "created_at"),
        Index("ix_workflow_instances_created_at", "created_at"),
    )


class WorkflowExecution(Base):
    """One step: a node of one instance. One row per node; `attempt` counts deliveries."""

    __tablename__ = "workflow_executions"

    id: Mapped[uuid.UUID] = uuid_pk()
    # Indexed by (instance_id, node_id), which also serves the cascade from instances.
    instance_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflow_instances.id", ondelete="CASCADE"), nullable=False
    )
    node_id: Mapped[str] = mapped_column(String(100), nullable=False)
    step_type: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    input_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int | None] = mapped_column(Integer, server_default="0")
    max_retries: Mapped[int | None] = mapped_column(Integer, server_default="0")
    # Fencing token: bumped on every claim; a late worker's write with an old attempt is ignored.
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # The handle the finished node selected (condition true/false, approval approved/rejected).
    selected_handle: Mapped[str | None] = mapped_column(String(50))
    # Database timer: a pending step is not due before this (retry backoff, delay wake-up).
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    celery_task_id: Mapped[str | None] = mapped_column(String(155))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        status_check("status", StepStatus),
        UniqueConstraint("instance_id", "node_id"),
        Index("ix_workflow_executions_status_run_after", "status", "run_after"),
    )
