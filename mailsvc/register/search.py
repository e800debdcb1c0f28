"""Diacritic-insensitive search over the register (tìm kiếm không dấu).

Each document has one search row: its fields (number and notation, abstract, subject,
type, issuing agency, signer, sender) and, when known, the text of its main document.
Text is folded in Python (NFD, combining marks dropped, đ → d, case folded) and reduced
to plain words, so "quyet dinh ky so" finds "Quyết định … ký số" and "35/2018" finds
"35/2018/QĐ-UBND" on both databases without a database extension: SQLite keeps the row
in an FTS5 table (``unicode61 remove_diacritics 2``), PostgreSQL in a table with a
generated ``tsvector`` (``simple`` configuration) and a GIN index. Every query word must
match, as a prefix.

:func:`index_document` runs inside the caller's transaction (the registering one, or a
workspace action's), so the index is always in step with the register; it never commits.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import text
from sqlalchemy.orm import Session

from mailsvc.register.models import RegisterDocument

MAX_BODY = 100_000  # characters of a main document's text kept for search
MAX_QUERY_WORDS = 12
_WORD = re.compile(r"[^\W_]+")


def fold(value: str) -> str:
    """ "Quyết định" → "quyet dinh", "Đắk Nông" → "dak nong"."""
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


def plain_words(value: str) -> list[str]:
    return _WORD.findall(fold(value))


def document_words(document: RegisterDocument) -> str:
    parts = (
        document.number_notation,
        document.abstract,
        document.subject,
        document.doc_type,
        document.agency_name,
        document.agency_code,
        document.signer,
        document.sender,
    )
    return " ".join(plain_words(" ".join(p for p in parts if p)))


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def index_document(session: Session, document: RegisterDocument, body: str | None = None) -> None:
    """(Re)write the document's search row. ``body`` is its main document's text; None
    keeps the text indexed before (a status change does not know it)."""
    session.flush()  # the document needs its id
    params: dict[str, object] = {
        "id": document.id,
        "content": document_words(document),
        "body": " ".join(plain_words(body[:MAX_BODY])) if body is not None else None,
    }
    if _is_sqlite(session):
        if params["body"] is None:
            params["body"] = (
                session.execute(
                    text("SELECT body FROM register_fts WHERE rowid = :id"), params
                ).scalar_one_or_none()
                or ""
            )
        session.execute(text("DELETE FROM register_fts WHERE rowid = :id"), params)
        session.execute(
            text("INSERT INTO register_fts (rowid, content, body) VALUES (:id, :content, :body)"),
            params,
        )
    else:
        session.execute(
            text(
                "INSERT INTO register_search (document_id, content, body) "
                "VALUES (:id, :content, COALESCE(:body, '')) "
                "ON CONFLICT (document_id) DO UPDATE SET content = excluded.content, "
                "body = COALESCE(:body, register_search.body)"
            ),
            params,
        )


def match_sql(session: Session, query: str) -> tuple[str, dict[str, str]] | None:
    """SQL selecting the ids of documents that match every word of ``query`` (as a
    prefix), with its parameters; None when the query has no word."""
    found = plain_words(query)[:MAX_QUERY_WORDS]
    if not found:
        return None
    if _is_sqlite(session):
        expr = " AND ".join(f'"{w}"*' for w in found)
        return "SELECT rowid FROM register_fts WHERE register_fts MATCH :q", {"q": expr}
    expr = " & ".join(f"{w}:*" for w in found)
    return (
        "SELECT document_id FROM register_search WHERE tsv @@ to_tsquery('simple', :q)",
        {"q": expr},
    )
