"""external IMAP mailboxes and fetched UIDs (issue 6; filled in by its owner)

Revision ID: external_0001
Revises: jobs_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "external_0001"
down_revision = "jobs_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "external_fetch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_fetch")),
        sa.UniqueConstraint(
            "mailbox", "uidvalidity", "uid", name=op.f("uq_external_fetch_mailbox")
        ),
    )
    with op.batch_alter_table("external_fetch", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_external_fetch_fetched_at"), ["fetched_at"], unique=False
        )

    op.create_table(
        "external_mailbox",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("idle", sa.Boolean(), nullable=False),
        sa.Column("last_poll_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_poll_new", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("last_error_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("poll_requested_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_external_mailbox")),
    )


def downgrade() -> None:
    op.drop_table("external_mailbox")
    with op.batch_alter_table("external_fetch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_external_fetch_fetched_at"))
    op.drop_table("external_fetch")
