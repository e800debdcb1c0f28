"""two-way exchange: routes in the directory, submissions in the outbound queue, the
outgoing register (sổ văn bản đi)

Revision ID: exchange_0001
Revises: docs_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "exchange_0001"
down_revision = "docs_0001"
branch_labels = None
depends_on = None

UTC = mailsvc.db.base.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("route", sa.String(length=320), nullable=False, server_default="")
        )
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("message_key", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("warned_at", UTC, nullable=True))
    op.create_table(
        "outgoing_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("outgoing_number", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("approved_by", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("number_notation", sa.String(length=128), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=True),
        sa.Column("doc_type", sa.String(length=64), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("signer", sa.String(length=256), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("main_filename", sa.String(length=256), nullable=False),
        sa.Column("main_sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("recall_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_document")),
        sa.UniqueConstraint("year", "outgoing_number", name=op.f("uq_outgoing_document_year")),
    )
    op.create_index("ix_outgoing_document_message_id", "outgoing_document", ["message_id"])
    op.create_index("ix_outgoing_document_created", "outgoing_document", ["created_at"])
    op.create_table(
        "outgoing_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("agency_code", sa.String(length=64), nullable=False),
        sa.Column("agency_name", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("outbound_id", sa.Integer(), nullable=True),
        sa.Column("their_number", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("answered_at", UTC, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["outgoing_document.id"],
            name=op.f("fk_outgoing_delivery_document_id_outgoing_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_delivery")),
    )
    op.create_index("ix_outgoing_delivery_outbound", "outgoing_delivery", ["outbound_id"])
    op.create_table(
        "outgoing_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=False),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["outgoing_document.id"],
            name=op.f("fk_outgoing_history_document_id_outgoing_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_history")),
    )
    op.create_table(
        "outgoing_counter",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_outgoing_counter")),
    )


def downgrade() -> None:
    op.drop_table("outgoing_counter")
    op.drop_table("outgoing_history")
    op.drop_index("ix_outgoing_delivery_outbound", table_name="outgoing_delivery")
    op.drop_table("outgoing_delivery")
    op.drop_index("ix_outgoing_document_created", table_name="outgoing_document")
    op.drop_index("ix_outgoing_document_message_id", table_name="outgoing_document")
    op.drop_table("outgoing_document")
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_column("warned_at")
        batch_op.drop_column("message_key")
    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.drop_column("route")
