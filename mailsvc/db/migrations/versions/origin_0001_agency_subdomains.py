"""agency.include_subdomains: pinned networks and DKIM keys that cover subdomains (issue 16)

Revision ID: origin_0001
Revises: external_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "origin_0001"
down_revision = "external_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agency") as batch_op:
        batch_op.add_column(
            sa.Column("include_subdomains", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("agency") as batch_op:
        batch_op.drop_column("include_subdomains")
