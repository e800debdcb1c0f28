"""incoming register: registers, yearly counters, documents, attachments, history

Revision ID: register_0001
Revises: quarantine_virus
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "register_0001"
down_revision = "quarantine_virus"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, mailsvc.db.base.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "register",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("domain", sa.String(length=253), nullable=False),
        _utc("created_at"),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_register_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register")),
        sa.UniqueConstraint("code", name=op.f("uq_register_code")),
    )
    op.create_table(
        "register_counter",
        sa.Column("register_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        _utc("updated_at"),
        sa.ForeignKeyConstraint(
            ["register_id"], ["register.id"], name=op.f("fk_register_counter_register_id_register")
        ),
        sa.PrimaryKeyConstraint("register_id", "year", name=op.f("pk_register_counter")),
    )
    op.create_table(
        "register_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored", sa.Boolean(), nullable=False),
        _utc("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_attachment")),
        sa.UniqueConstraint("sha256", name=op.f("uq_register_attachment_sha256")),
    )
    op.create_table(
        "register_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("register_id", sa.Integer(), nullable=False),
        sa.Column("incoming_number", sa.Integer(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False),
        _utc("received_at"),
        _utc("registered_at", nullable=True),
        sa.Column("agency_code", sa.String(length=64), nullable=False),
        sa.Column("agency_name", sa.String(length=512), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("message_record_id", sa.Integer(), nullable=True),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("number_notation", sa.String(length=128), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=True),
        sa.Column("doc_type", sa.String(length=64), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("signer", sa.String(length=256), nullable=False),
        sa.Column("signature_outcome", sa.String(length=16), nullable=False),
        sa.Column("signature_reason", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=True),
        sa.Column("assigned_to", sa.String(length=256), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("main_sha256", sa.String(length=64), nullable=False),
        sa.Column("ref_key", sa.String(length=64), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        _utc("updated_at"),
        sa.ForeignKeyConstraint(
            ["register_id"], ["register.id"], name=op.f("fk_register_document_register_id_register")
        ),
        sa.ForeignKeyConstraint(
            ["message_record_id"],
            ["message.id"],
            name=op.f("fk_register_document_message_record_id_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_document")),
        sa.UniqueConstraint(
            "register_id",
            "year",
            "incoming_number",
            name=op.f("uq_register_document_register_id"),
        ),
    )
    op.create_index(
        "ix_register_document_received", "register_document", ["register_id", "received_at"]
    )
    op.create_index(
        "ix_register_document_message_key", "register_document", ["register_id", "message_key"]
    )
    op.create_index(
        "ix_register_document_main_sha256",
        "register_document",
        ["register_id", "sender", "main_sha256"],
    )
    op.create_index(
        "ix_register_document_ref_key", "register_document", ["register_id", "sender", "ref_key"]
    )
    op.create_table(
        "register_document_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["register_attachment.id"],
            name=op.f("fk_register_document_attachment_attachment_id_register_attachment"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["register_document.id"],
            name=op.f("fk_register_document_attachment_document_id_register_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_document_attachment")),
        sa.UniqueConstraint(
            "document_id",
            "attachment_id",
            "filename",
            name=op.f("uq_register_document_attachment_document_id"),
        ),
    )
    op.create_index(
        op.f("ix_register_document_attachment_document_id"),
        "register_document_attachment",
        ["document_id"],
    )
    op.create_index(
        op.f("ix_register_document_attachment_attachment_id"),
        "register_document_attachment",
        ["attachment_id"],
    )
    op.create_table(
        "register_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("message_record_id", sa.Integer(), nullable=True),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        _utc("at"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["register_document.id"],
            name=op.f("fk_register_delivery_document_id_register_document"),
        ),
        sa.ForeignKeyConstraint(
            ["message_record_id"],
            ["message.id"],
            name=op.f("fk_register_delivery_message_record_id_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_delivery")),
    )
    op.create_index(op.f("ix_register_delivery_document_id"), "register_delivery", ["document_id"])
    op.create_table(
        "register_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        _utc("at"),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("assigned_to", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["register_document.id"],
            name=op.f("fk_register_history_document_id_register_document"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_history")),
    )
    op.create_index(op.f("ix_register_history_document_id"), "register_history", ["document_id"])


def downgrade() -> None:
    op.drop_table("register_history")
    op.drop_table("register_delivery")
    op.drop_table("register_document_attachment")
    op.drop_table("register_document")
    op.drop_table("register_attachment")
    op.drop_table("register_counter")
    op.drop_table("register")
