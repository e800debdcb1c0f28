"""workspace: browser sessions and the register's search index

Revision ID: workspace_0001
Revises: origin_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mailsvc.db.base

revision = "workspace_0001"
down_revision = "origin_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_session",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("created_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", mailsvc.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_web_session")),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_address"), ["address"], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE register_fts USING fts5("
            "content, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
    else:
        op.execute(
            "CREATE TABLE register_search ("
            " document_id INTEGER PRIMARY KEY REFERENCES register_document (id),"
            " content TEXT NOT NULL DEFAULT '',"
            " body TEXT NOT NULL DEFAULT '',"
            " tsv tsvector GENERATED ALWAYS AS"
            " (to_tsvector('simple', content || ' ' || body)) STORED)"
        )
        op.execute("CREATE INDEX ix_register_search_tsv ON register_search USING gin (tsv)")
    # Index what is already registered.
    from mailsvc.register.search import plain_words

    rows = bind.execute(
        sa.text(
            "SELECT id, number_notation, abstract, subject, doc_type, agency_name, "
            "agency_code, signer, sender FROM register_document"
        )
    ).all()
    for row in rows:
        content = " ".join(plain_words(" ".join(str(v or "") for v in row[1:])))
        if bind.dialect.name == "sqlite":
            sql = "INSERT INTO register_fts (rowid, content, body) VALUES (:id, :c, '')"
        else:
            sql = "INSERT INTO register_search (document_id, content) VALUES (:id, :c)"
        bind.execute(sa.text(sql), {"id": row[0], "c": content})


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE register_fts")
    else:
        op.execute("DROP TABLE register_search")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_address"))
    op.drop_table("web_session")
