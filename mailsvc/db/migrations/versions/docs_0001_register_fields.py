"""register_document: page count, attachment count, the mail's Date, language (issue 13)

Revision ID: docs_0001
Revises: workspace_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "docs_0001"
down_revision = "workspace_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("register_document") as batch_op:
        batch_op.add_column(
            sa.Column("page_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("attachment_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("mail_date", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("language", sa.String(length=16), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("register_document") as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("mail_date")
        batch_op.drop_column("attachment_count")
        batch_op.drop_column("page_count")
