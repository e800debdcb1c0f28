"""Settings and sessions on the test database for the scheduler tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings, load_settings
from mailsvc.db.session import make_engine, make_sessionmaker
from tests.e2e.conftest import server, service_home  # noqa: F401  (the running server)


def write_home(home: Path, db_url: str, extra: str = "") -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "mailsvc.toml").write_text(
        '[server]\ndomain = "stttt.example.gov.vn"\nhostname = "mail.stttt.example.gov.vn"\n'
        f"[database]\nurl = {json.dumps(db_url)}\n{extra}",
        encoding="utf-8",
    )
    return load_settings(home, environ={})


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return write_home(tmp_path / "home", db_url)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()
