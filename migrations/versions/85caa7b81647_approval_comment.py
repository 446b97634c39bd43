"""workflow_approvals.comment: the approver's comment on an approval

Revision ID: 85caa7b81647
Revises: 0001
Create Date: 2026-11-25 21:59:25.250277
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "85caa7b81647"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workflow_approvals", sa.Column("comment", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("workflow_approvals", "comment")
