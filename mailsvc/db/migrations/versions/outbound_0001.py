"""durable outbound queue (issue 5; filled in by its owner)

Revision ID: outbound_0001
Revises: checks_0001
"""

from __future__ import annotations

revision = "outbound_0001"
down_revision = "checks_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
