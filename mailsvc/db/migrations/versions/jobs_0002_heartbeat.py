"""job_run.heartbeat_at: a running job's node refreshes it, so a claim left ``running`` by a
node that died is found (stale) and recorded ``interrupted``; existing rows take their end
(or start) time

Revision ID: jobs_0002
Revises: perf_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "jobs_0002"
down_revision = "perf_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("heartbeat_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE job_run SET heartbeat_at = COALESCE(finished_at, started_at)")
    with op.batch_alter_table("job_run", schema=None) as batch_op:
        batch_op.alter_column(
            "heartbeat_at",
            existing_type=mailsvc.db.base.UtcDateTime(timezone=True),
            nullable=False,
        )
        batch_op.create_index(
            "ix_job_run_outcome_heartbeat", ["outcome", "heartbeat_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("job_run", schema=None) as batch_op:
        batch_op.drop_index("ix_job_run_outcome_heartbeat")
        batch_op.drop_column("heartbeat_at")
