"""message_signature: each signature of a delivered message's documents, with the
certificate's fingerprint in its own indexed column (issue 14); backfilled from the
signatures stage's record in the stored verdicts

Revision ID: perf_0001
Revises: exchange_0001
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "perf_0001"
down_revision = "exchange_0001"
branch_labels = None
depends_on = None

BATCH = 500


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _fingerprint(value: Any) -> str:
    return _text(value).replace(":", "").replace(" ", "").strip().lower()[:128]


def _rows(message_id: int, verdict: Any) -> Iterator[dict[str, Any]]:
    """The rows the signatures stage's findings in one stored verdict stand for."""
    if isinstance(verdict, str):
        verdict = json.loads(verdict)
    findings = verdict.get("findings") if isinstance(verdict, dict) else None
    position = 0
    for finding in findings if isinstance(findings, list) else ():
        if not isinstance(finding, dict) or finding.get("stage") != "signatures":
            continue
        evidence = finding.get("evidence")
        if not isinstance(evidence, dict) or not isinstance(evidence.get("signatures"), list):
            continue
        for item in evidence["signatures"]:
            if not isinstance(item, dict):
                continue
            yield {
                "message_record_id": message_id,
                "position": position,
                "document": _text(evidence.get("document")),
                "format": _text(item.get("format"))[:16],
                "indication": _text(item.get("indication"))[:16],
                "subindication": _text(item.get("subindication")),
                "signer": _text(item.get("signer")),
                "organisation": _text(item.get("organisation")),
                "kind": _text(item.get("kind"))[:16],
                "serial": _text(item.get("serial")),
                "fingerprint": _fingerprint(item.get("fingerprint")),
            }
            position += 1


def upgrade() -> None:
    table = op.create_table(
        "message_signature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("indication", sa.String(length=16), nullable=False),
        sa.Column("subindication", sa.Text(), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
        sa.Column("organisation", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("serial", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_record_id"],
            ["message.id"],
            name=op.f("fk_message_signature_message_record_id_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_signature")),
    )
    op.create_index(
        "ix_message_signature_fingerprint",
        "message_signature",
        ["fingerprint", "message_record_id"],
    )
    op.create_index(
        "ix_message_signature_message", "message_signature", ["message_record_id", "position"]
    )

    # Backfill: the messages whose stored verdict records a signature (the text narrows,
    # the parsed JSON decides), read in id order, written in batches.
    message = sa.table(
        "message", sa.column("id", sa.Integer()), sa.column("verdict", sa.JSON())
    )
    bind = op.get_bind()
    last = 0
    while True:
        found = bind.execute(
            sa.select(message.c.id, message.c.verdict)
            .where(
                message.c.id > last,
                sa.cast(message.c.verdict, sa.Text).contains('"fingerprint"'),
            )
            .order_by(message.c.id)
            .limit(BATCH)
        ).all()
        if not found:
            break
        rows = [row for message_id, verdict in found for row in _rows(message_id, verdict)]
        if rows:
            bind.execute(sa.insert(table), rows)
        last = found[-1][0]


def downgrade() -> None:
    op.drop_index("ix_message_signature_message", table_name="message_signature")
    op.drop_index("ix_message_signature_fingerprint", table_name="message_signature")
    op.drop_table("message_signature")
