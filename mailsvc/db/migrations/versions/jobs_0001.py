"""scheduler job runs and claims (issue 6; filled in by its owner)

Revision ID: jobs_0001
Revises: outbound_0001
"""

from __future__ import annotations

revision = "jobs_0001"
down_revision = "outbound_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
