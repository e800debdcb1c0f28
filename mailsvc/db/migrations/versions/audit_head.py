"""audit chain head (entry count and last hash)

Revision ID: audit_head
Revises: 0001_core
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "audit_head"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(
        table,
        [{"id": 1, "count": 0, "last_hash": "0" * 64, "updated_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("audit_head")
