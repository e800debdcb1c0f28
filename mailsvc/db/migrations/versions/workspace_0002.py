"""workspace: register indexes for the list pages (each filter with id for keyset paging)
and FTS5 prefix indexes for search on SQLite

Revision ID: workspace_0002
Revises: workspace_0001
"""

from __future__ import annotations

from alembic import op

revision = "workspace_0002"
down_revision = "workspace_0001"
branch_labels = None
depends_on = None

# name -> columns: the register scope, the filter's column(s), then id (newest first).
INDEXES = {
    "ix_register_document_status_page": ["register_id", "status", "id"],
    "ix_register_document_agency_page": ["register_id", "agency_code", "id"],
    "ix_register_document_outcome_page": ["register_id", "signature_outcome", "id"],
    "ix_register_document_year_page": ["register_id", "year", "id"],
    "ix_register_document_urgency_page": ["register_id", "urgency", "id"],
    "ix_register_document_year_urgency_page": ["register_id", "year", "urgency", "id"],
}


FTS = (
    "CREATE VIRTUAL TABLE {name} USING fts5("
    "content, body, tokenize = 'unicode61 remove_diacritics 2'{extra})"
)
# Prefix queries of one to three letters ("so"*, "ky"*) read one prefix doclist instead
# of merging every term they expand to (about 2.5x faster on a million documents, for
# about 1.8x the size of the search index).
PREFIX = ", prefix = '1 2 3'"


def _rebuild_fts(extra: str) -> None:
    op.execute(FTS.format(name="register_fts_new", extra=extra))
    op.execute(
        "INSERT INTO register_fts_new (rowid, content, body) "
        "SELECT rowid, content, body FROM register_fts"
    )
    op.execute("DROP TABLE register_fts")
    op.execute("ALTER TABLE register_fts_new RENAME TO register_fts")


def upgrade() -> None:
    # The list itself: PostgreSQL's planner walks these ids for a date range too
    # (expecting matches spread evenly), so the walk reads the index alone.
    op.create_index(
        "ix_register_document_page",
        "register_document",
        ["register_id", "id"],
        postgresql_include=["received_at"],
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "register_document", columns)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_fts(PREFIX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_fts("")
    for name in INDEXES:
        op.drop_index(name, table_name="register_document")
    op.drop_index("ix_register_document_page", table_name="register_document")
