"""external IMAP mailboxes and fetched UIDs (issue 6; filled in by its owner)

Revision ID: external_0001
Revises: jobs_0001
"""

from __future__ import annotations

revision = "external_0001"
down_revision = "jobs_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
