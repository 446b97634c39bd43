"""API tokens, the audit log and encrypted secrets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at_column, updated_at_column, uuid_pk


class ApiToken(Base):
    """A bearer token; only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # First characters of the token, to help people recognise which one is which.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    roles: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_api_tokens_created_at", "created_at"),)


class AuditLogEntry(Base):
    """Append-only record of every mutating call. Never updated or deleted by the API."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = created_at_column()
    actor: Mapped[str | None] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    resource_type: Mapped[str | None] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    status_code: Mapped[int | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_resource_type_resource_id", "resource_type", "resource_id"),
    )


# What a writer of an audit row supplies (`api.audit`); the id and time are the database's.
AUDIT_ENTRY_COLUMNS = ("actor", "action", "resource_type", "resource_id", "outcome",
                       "status_code", "request_id", "client_address", "details")
# One audit row from those columns' `%(name)s` parameters; a writer may add a FROM and WHERE
# that decide whether it is written at all (`models.launches`).
INSERT_AUDIT_ENTRY = (
    f"INSERT INTO {AuditLogEntry.__tablename__} ({', '.join(AUDIT_ENTRY_COLUMNS)})"
    f" SELECT {', '.join(f'%({name})s' for name in AUDIT_ENTRY_COLUMNS)}")


class Secret(Base):
    """A named secret, encrypted with the first of FLOWYARD_SECRET_KEYS."""

    __tablename__ = "secrets"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
