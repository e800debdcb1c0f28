"""scheduler job runs and claims (issue 6; filled in by its owner)

Revision ID: jobs_0001
Revises: outbound_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "jobs_0001"
down_revision = "outbound_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # APScheduler's job store (the schedule shared by every node).
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )

    op.create_table(
        "job_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("scheduled_for", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("started_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run")),
        sa.UniqueConstraint("job", "scheduled_for", name=op.f("uq_job_run_job")),
    )
    with op.batch_alter_table("job_run", schema=None) as batch_op:
        batch_op.create_index("ix_job_run_job_started", ["job", "started_at"], unique=False)

    op.create_table(
        "overdue_reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("sent_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["register_document.id"],
            name=op.f("fk_overdue_reminder_document_id_register_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overdue_reminder")),
        sa.UniqueConstraint("document_id", "day", name=op.f("uq_overdue_reminder_document_id")),
    )
    with op.batch_alter_table("overdue_reminder", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_overdue_reminder_sent_at"), ["sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("overdue_reminder", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_overdue_reminder_sent_at"))
    op.drop_table("overdue_reminder")
    with op.batch_alter_table("job_run", schema=None) as batch_op:
        batch_op.drop_index("ix_job_run_job_started")
    op.drop_table("job_run")
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apscheduler_jobs_next_run_time"))
    op.drop_table("apscheduler_jobs")
