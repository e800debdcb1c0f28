"""dovecot_passdb view: what Dovecot's SQL passdb and userdb read

Revision ID: mailboxes_dovecot_passdb
Revises: audit_head
Create Date: 2026-11-21 06:10:00

One row per mailbox that is not removed. ``state`` is one of ``ok``,
``must_change`` (one-time password), ``expired`` (password past
``password_expires_at``) and ``disabled``; the generated Dovecot query turns
anything but ``ok`` into ``nologin=Y`` plus a reason. Booleans are compared
without literals so the same SQL works on SQLite (0/1) and PostgreSQL.
``CURRENT_TIMESTAMP`` is UTC text on SQLite ("YYYY-MM-DD HH:MM:SS", which
compares correctly with SQLAlchemy's stored "YYYY-MM-DD HH:MM:SS.ffffff")
and a timestamptz on PostgreSQL.
"""

from __future__ import annotations

from alembic import op

revision = "mailboxes_dovecot_passdb"
down_revision = "audit_head"
branch_labels = None
depends_on = None

VIEW = """
CREATE VIEW dovecot_passdb AS
SELECT
    lower(address) AS username,
    password_hash AS password,
    CASE
        WHEN NOT enabled THEN 'disabled'
        WHEN password_expires_at IS NOT NULL
             AND password_expires_at < CURRENT_TIMESTAMP THEN 'expired'
        WHEN must_change THEN 'must_change'
        ELSE 'ok'
    END AS state
FROM mailbox
WHERE NOT removed
"""


def upgrade() -> None:
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW dovecot_passdb")
