"""Human approvals and outbound notifications."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from engine.statuses import ApprovalStatus, NotificationChannel, NotificationStatus
from models.base import Base, created_at_column, status_check, updated_at_column, uuid_pk


class WorkflowApproval(Base):
    __tablename__ = "workflow_approvals"

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True
    )
    approver_role: Mapped[str] = mapped_column(String(100), nullable=False)
    approver_user_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(50), server_default="pending")
    requested_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approval_message: Mapped[str | None] = mapped_column(Text)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    # The approver's comment on an approval (a rejection's goes to rejection_reason).
    comment: Mapped[str | None] = mapped_column(Text)
    approval_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    notifications_sent: Mapped[int | None] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        status_check("status", ApprovalStatus),
        Index("ix_workflow_approvals_status_expires_at", "status", "expires_at"),
        Index("ix_workflow_approvals_created_at", "created_at"),
    )


class WorkflowNotification(Base):
    __tablename__ = "workflow_notifications"

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_instances.id", ondelete="CASCADE"), index=True
    )
    execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True
    )
    notification_type: Mapped[str] = mapped_column(String(50), nullable=False)
    channel: Mapped[str] = mapped_column(String(50), nullable=False)
    recipients: Mapped[list[str] | None] = mapped_column(JSONB)
    subject: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(50), server_default="pending")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_details: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int | None] = mapped_column(Integer, server_default="0")
    notification_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Constant across retries so receivers can drop duplicates.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Database timer for the next send attempt (backoff between retries).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        status_check("status", NotificationStatus),
        status_check("channel", NotificationChannel, "channel_valid"),
        Index("ix_workflow_notifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_workflow_notifications_created_at", "created_at"),
    )
