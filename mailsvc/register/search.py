"""Diacritic-insensitive search over the register (tìm kiếm không dấu).

Each document has one search row: its fields (number and notation, abstract, subject,
type, issuing agency, signer, sender) and, when known, the text of its main document.
Text is folded in Python (NFD, combining marks dropped, đ → d, case folded) and reduced
to plain words, so "quyet dinh ky so" finds "Quyết định … ký số" and "35/2018" finds
"35/2018/QĐ-UBND" on both databases without a database extension: SQLite keeps the row
in an FTS5 table (``unicode61 remove_diacritics 2``), PostgreSQL in a table with a
generated ``tsvector`` (``simple`` configuration) and a GIN index. Every query word must
match as a whole word, the last one as a prefix ("chuyen doi s" finds "chuyển đổi số"):
whole words are read lazily from the index, newest first, where a prefix of a common
word ("dinh"*) would merge every term it expands to before the first match.

:func:`index_document` runs inside the caller's transaction (the registering one, or a
workspace action's), so the index is always in step with the register; it never commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, column, func, literal_column, select, table, text
from sqlalchemy.orm import Session

from mailsvc.documents.words import plain_words
from mailsvc.register.models import RegisterDocument

MAX_BODY = 100_000  # characters of a main document's text kept for search
MAX_QUERY_WORDS = 12


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


_FTS_BODY = text("SELECT body FROM register_fts WHERE rowid = :id")
# FTS5 takes REPLACE on its rowid: the old row's terms leave the index with it.
_FTS_WRITE = text(
    "INSERT OR REPLACE INTO register_fts (rowid, content, body) VALUES (:id, :content, :body)"
)
_SEARCH_UPSERT = text(
    "INSERT INTO register_search (document_id, content, body) "
    "VALUES (:id, :content, COALESCE(:body, '')) "
    "ON CONFLICT (document_id) DO UPDATE SET content = excluded.content, "
    "body = COALESCE(:body, register_search.body)"
)


def index_document(
    session: Session, document: RegisterDocument, body: str | None = None, *, new: bool = False
) -> None:
    """(Re)write the document's search row. ``body`` is its main document's text; None
    keeps the text indexed before (a status change does not know it). ``new``: the
    document was just inserted (its id known) and has no search row yet."""
    if not new:
        session.flush()  # the document needs its id
    params: dict[str, object] = {
        "id": document.id,
        "content": document_words(document),
        "body": " ".join(plain_words(body[:MAX_BODY])) if body is not None else None,
    }
    if _is_sqlite(session):
        if params["body"] is None:
            params["body"] = (
                "" if new else session.execute(_FTS_BODY, params).scalar_one_or_none() or ""
            )
        session.execute(_FTS_WRITE, params)
    else:
        session.execute(_SEARCH_UPSERT, params)


# Below this many matches (PostgreSQL), a search takes its matches from the GIN index and
# sorts them; above it, matches are dense enough that walking the register newest first
# and probing each document's row finds a page sooner.
FEW_MATCHES = 5_000


def _estimated_rows(session: Session, query: Select[Any]) -> float:
    """PostgreSQL's own estimate of the rows ``query`` returns (planning only; the GIN
    statistics know common words, and a word they do not know is rare)."""
    compiled = query.compile(dialect=session.get_bind().dialect)
    plan = (
        session.connection()
        .exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
        .scalar_one()
    )
    return float(plan[0]["Plan"]["Plan Rows"])


def narrow(session: Session, ids: Select[Any], query: str, before: int | None) -> Select[Any]:
    """``ids`` (document ids, no order yet) limited to documents matching every word of
    ``query`` (the last one as a prefix), ordered newest first; ``before`` is the keyset bound.

    SQLite walks the FTS5 index in rowid order (newest first, from ``before``) and looks
    each match up by primary key, so a common word stops after one page of matches and a
    rare one after its few. PostgreSQL has no ordered walk of a GIN index: a query with
    few matches (counted up to ``FEW_MATCHES``) is answered from their ids; otherwise the
    planner walks the register's id index and probes ``register_search`` per document."""
    doc = RegisterDocument
    found = plain_words(query)[:MAX_QUERY_WORDS]
    if not found:
        return ids.order_by(doc.id.desc())
    if _is_sqlite(session):
        fts = table("register_fts", column("rowid", Integer))
        expr = " AND ".join([*(f'"{w}"' for w in found[:-1]), f'"{found[-1]}"*'])
        ids = ids.join(fts, fts.c.rowid == doc.id).where(
            literal_column("register_fts").op("MATCH")(expr)
        )
        if before is not None:
            ids = ids.where(fts.c.rowid < before)
        return ids.order_by(fts.c.rowid.desc())
    rs = table("register_search", column("document_id", Integer), column("tsv"))
    expr = " & ".join([*found[:-1], f"{found[-1]}:*"])
    tsquery = func.to_tsquery(literal_column("'simple'"), expr)
    matching = select(rs.c.document_id).where(rs.c.tsv.op("@@")(tsquery))
    if before is not None:
        matching = matching.where(rs.c.document_id < before)
    if _estimated_rows(session, matching) <= FEW_MATCHES:
        few = list(session.scalars(matching.limit(FEW_MATCHES + 1)))
        if len(few) <= FEW_MATCHES:
            return ids.where(doc.id.in_(few)).order_by(doc.id.desc())
    return ids.where(doc.id.in_(matching)).order_by(doc.id.desc())
