"""Instances and steps: indexes no query needs dropped, two made partial

Every write of a row writes a new entry into each index of its table, unless the write
leaves every indexed column alone, and a run changes the status (indexed) at each write:
an instance row is written three times by a run (inserted, started, ended), a step twice
or more. These indexes cost that on every run and served nothing:

- `ix_workflow_instances_workflow_id`: `(workflow_id, created_at)` serves the same lookups,
  and the cascade from workflows;
- `ix_workflow_executions_instance_id`: the unique `(instance_id, node_id)` serves the same
  lookups, and the cascade from instances;
- `ix_workflow_executions_created_at`: nothing reads steps by creation time across
  instances (an instance's steps are read by instance).

Two are kept for the rows that use them: the unique idempotency key (a key's lookup names
the key, and a NULL key is never a duplicate of anything) and the parent step of a
sub-workflow child (lookups and the SET NULL action name a step). Most instances have
neither, and are no longer in those indexes.

Rebuilding each of those two reads workflow_instances once and blocks writes to it
meanwhile (0.1 s each for a million narrow rows here); the old key index is dropped in
the same transaction, so uniqueness holds throughout.

Revision ID: 3c1f0b9e5d27
Revises: 85caa7b81647
Create Date: 2026-11-27 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f0b9e5d27"
down_revision: str | None = "85caa7b81647"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDEMPOTENCY = "uq_workflow_instances_workflow_id_idempotency_key"
_PARENT = "ix_workflow_instances_parent_execution_id"


def upgrade() -> None:
    op.drop_index("ix_workflow_instances_workflow_id", table_name="workflow_instances")
    op.drop_index("ix_workflow_executions_instance_id", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_created_at", table_name="workflow_executions")
    op.drop_constraint(_IDEMPOTENCY, "workflow_instances", type_="unique")
    op.create_index(_IDEMPOTENCY, "workflow_instances", ["workflow_id", "idempotency_key"],
                    unique=True, postgresql_where=sa.text("idempotency_key IS NOT NULL"))
    op.drop_index(_PARENT, table_name="workflow_instances")
    op.create_index(_PARENT, "workflow_instances", ["parent_execution_id"],
                    postgresql_where=sa.text("parent_execution_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index(_PARENT, table_name="workflow_instances")
    op.create_index(_PARENT, "workflow_instances", ["parent_execution_id"])
    op.drop_index(_IDEMPOTENCY, table_name="workflow_instances")
    op.create_unique_constraint(_IDEMPOTENCY, "workflow_instances",
                                ["workflow_id", "idempotency_key"])
    op.create_index("ix_workflow_executions_created_at", "workflow_executions", ["created_at"])
    op.create_index("ix_workflow_executions_instance_id", "workflow_executions",
                    ["instance_id"])
    op.create_index("ix_workflow_instances_workflow_id", "workflow_instances", ["workflow_id"])
