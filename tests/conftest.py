"""Shared fixtures: a fresh, migrated database per test (SQLite, or PostgreSQL when
MAILSVC_TEST_DATABASE holds an admin URL such as postgresql://postgres@127.0.0.1:5432/test)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailsvc.db.session import migrate

PG_ADMIN_URL = os.environ.get("MAILSVC_TEST_DATABASE", "")


def _create_pg_database(admin_url: str, template: str = "template0") -> tuple[str, str]:
    name = f"mailsvc_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\''))
    engine.dispose()
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    engine = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """One database migrated once per test session; each test gets a copy of it
    (CREATE DATABASE ... TEMPLATE), much faster than migrating every time."""
    if not PG_ADMIN_URL:
        yield ""
        return
    name, url = _create_pg_database(PG_ADMIN_URL)
    try:
        migrate(url)
        yield name
    finally:
        _drop_pg_database(PG_ADMIN_URL, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated once per test session (checkpointed: the whole database
    is in the file); each test gets a copy of it, as PostgreSQL tests get a template's."""
    path = tmp_path_factory.mktemp("template") / "mailsvc.sqlite3"
    migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _fresh_database(
    tmp_path: Path, file_name: str, pg_template: str, sqlite_template: Path
) -> Iterator[str]:
    if PG_ADMIN_URL:
        name, url = _create_pg_database(PG_ADMIN_URL, pg_template)
        try:
            migrate(url)  # a no-op on the migrated copy; keeps the contract explicit
            yield url
        finally:
            _drop_pg_database(PG_ADMIN_URL, name)
    else:
        shutil.copyfile(sqlite_template, tmp_path / file_name)
        url = f"sqlite:///{tmp_path / file_name}"
        migrate(url)  # likewise a no-op on the copy
        yield url


@pytest.fixture
def db_url(tmp_path: Path, pg_template: str, sqlite_template: Path) -> Iterator[str]:
    """URL of a fresh database migrated to head; dropped after the test."""
    yield from _fresh_database(tmp_path, "mailsvc.sqlite3", pg_template, sqlite_template)


@pytest.fixture
def other_db_url(tmp_path: Path, pg_template: str, sqlite_template: Path) -> Iterator[str]:
    """A second fresh database (a second mailsvc instance in the same test)."""
    yield from _fresh_database(tmp_path, "other.sqlite3", pg_template, sqlite_template)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> object:
    """One softhsm2 token for the session with the sample organisation key (see
    tests/softhsm.py); returns its Token."""
    from tests.signatures.pki import session_pki
    from tests.softhsm import make_token

    return make_token(tmp_path_factory.mktemp("softhsm"), session_pki().organisation)
