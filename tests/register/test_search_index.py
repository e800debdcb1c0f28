"""The register's search index: a new entry is found by its words and its document's text;
writing it again replaces what was indexed (old words no longer match), and a re-index
without the text keeps the text indexed before. On SQLite (FTS5) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.register import search
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.registration import register_document
from mailsvc.store.blobs import BlobStore

from .builders import document


def _found(session: Session, query: str) -> list[int]:
    ids = select(RegisterDocument.id)
    return list(session.scalars(search.narrow(session, ids, query, None)))


def test_new_entries_are_found_and_a_reindex_replaces_their_words(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    first_doc = document(abstract="V/v phòng cháy chữa cháy mùa khô", text="Nội dung hạn hán")
    second_doc = document(abstract="V/v tuyển sinh lớp mười", text="Nội dung giáo dục")
    with sessions.begin() as session:
        first = register_document(session, register, first_doc, blobs=blobs).document_id
        second = register_document(session, register, second_doc, blobs=blobs).document_id
    with sessions() as session:
        assert _found(session, "cháy") == [first]
        assert _found(session, "han han") == [first]  # the text, without diacritics
        assert _found(session, "tuyển sinh") == [second]
        assert _found(session, "nội dung") == [second, first]

    with sessions.begin() as session:
        row = session.get(RegisterDocument, first)
        assert row is not None
        row.abstract = "V/v kế hoạch trồng rừng"
        search.index_document(session, row)  # no text: the text indexed before stays
    with sessions() as session:
        assert _found(session, "cháy") == []
        assert _found(session, "trồng rừng") == [first]
        assert _found(session, "hạn hán") == [first]

    with sessions.begin() as session:
        row = session.get(RegisterDocument, first)
        assert row is not None
        search.index_document(session, row, body="Nội dung lũ lụt")
    with sessions() as session:
        assert _found(session, "hạn hán") == []
        assert _found(session, "lũ lụt") == [first]
        assert _found(session, "tuyển") == [second]
