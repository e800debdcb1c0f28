"""virus detections (quarantine records: hash, envelope, signature; never the content)

Revision ID: quarantine_virus
Revises: mailboxes_dovecot_passdb
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "quarantine_virus"
down_revision = "mailboxes_dovecot_passdb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "virus_detection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("detected_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("mail_from", sa.String(length=320), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virus_detection")),
    )
    with op.batch_alter_table("virus_detection", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_virus_detection_detected_at"), ["detected_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_virus_detection_sha256"), ["sha256"], unique=False)
        batch_op.create_index(
            "ix_virus_detection_client_ip_at", ["client_ip", "detected_at"], unique=False
        )
        batch_op.create_index(
            "ix_virus_detection_mail_from_at", ["mail_from", "detected_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("virus_detection", schema=None) as batch_op:
        batch_op.drop_index("ix_virus_detection_mail_from_at")
        batch_op.drop_index("ix_virus_detection_client_ip_at")
        batch_op.drop_index(batch_op.f("ix_virus_detection_sha256"))
        batch_op.drop_index(batch_op.f("ix_virus_detection_detected_at"))
    op.drop_table("virus_detection")
