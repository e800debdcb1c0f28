"""Fixtures for the register: sessions on the test database, a blob store, and a
ready register."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.register.models import Register
from mailsvc.register.registers import ensure_register
from mailsvc.store.blobs import BlobStore


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def register(sessions: sessionmaker[Session]) -> Register:
    with sessions.begin() as session:
        return ensure_register(session, "000.00.31.H56", "Sổ đăng ký văn bản đến - Sở TT&TT")
