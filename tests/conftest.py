"""Shared fixtures: a fresh, migrated database per test (SQLite, or PostgreSQL when
MAILSVC_TEST_DATABASE holds an admin URL such as postgresql://postgres@127.0.0.1:5432/test)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailsvc.db.session import migrate

PG_ADMIN_URL = os.environ.get("MAILSVC_TEST_DATABASE", "")

# The fixtures through which a test reaches the suite's database: the templates behind
# ``db_url`` and ``other_db_url``, and the few fixtures that make a database of their own
# from MAILSVC_TEST_DATABASE (an empty one for migrations, the hostile corpus's server, the
# crash test's). A test whose fixtures include none of them runs on no database at all.
# A new fixture that makes a database from PG_ADMIN_URL belongs here, or the PostgreSQL
# pass leaves its tests out.
DATABASE_FIXTURES = frozenset(
    {"pg_template", "sqlite_template", "empty_url", "hostile_server", "database"}
)


def reaches_database(item: pytest.Item) -> bool:
    return bool(DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run the tests that reach the database; leave out the others.

    The suite runs once per database (``scripts/test``). A test that reaches no database
    (a parser, a corpus, OCR, signature checks, a CLI command on a home of its own) does
    the same thing in both passes: the SQLite pass runs it, and running it again on
    PostgreSQL tested nothing more (about four tests in five, a fifth of that pass's time).
    ``MAILSVC_TEST_ALL=1`` runs every test in the PostgreSQL pass too.

    The modules of tests marked ``long(seconds)`` (the two-minute soak, the crash
    test...) go first, longest first: with the suite spread over processes
    (``scripts/test``: pytest-xdist, one module at a time), the longest start at once
    and the others fill the other processes meanwhile, instead of a two-minute test
    starting last."""
    if PG_ADMIN_URL and os.environ.get("MAILSVC_TEST_ALL") != "1":
        kept = [item for item in items if reaches_database(item)]
        if len(kept) < len(items):
            left = [item for item in items if not reaches_database(item)]
            config.hook.pytest_deselected(items=left)
            items[:] = kept
    seconds: dict[str, float] = {}
    for item in items:
        if (marker := item.get_closest_marker("long")) is not None:
            module = _module_of(item)
            seconds[module] = seconds.get(module, 0.0) + float(marker.args[0])
    items.sort(key=lambda item: -seconds.get(_module_of(item), 0.0))  # stable: else as collected


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


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


class TemplateCopies:
    """Copies of the migrated PostgreSQL template, made one ahead by a thread of their own.

    A test takes a copy that is ready instead of waiting for ``CREATE DATABASE`` (0.1 to 0.2
    s each, some 450 tests of the PostgreSQL pass), and gives it back to be dropped by the
    same thread while the next test runs."""

    def __init__(self, admin_url: str, template: str) -> None:
        self._admin_url, self._template = admin_url, template
        self._changed = threading.Condition()
        self._ready: list[tuple[str, str]] = []
        self._dropping: list[str] = []
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="pg-template-copies", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closing or bool(self._dropping) or not self._ready
                )
                drops, self._dropping = self._dropping, []
                make = not self._ready and not self._closing
                if not drops and not make:
                    return  # closing, nothing left to drop
            try:
                for name in drops:
                    _drop_pg_database(self._admin_url, name)
                copy = _create_pg_database(self._admin_url, self._template) if make else None
            except BaseException as exc:  # the next take() raises it, at once
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            if copy is not None:
                with self._changed:
                    self._ready.append(copy)
                    self._changed.notify_all()

    def take(self) -> tuple[str, str]:
        with self._changed:
            if not self._changed.wait_for(lambda: self._ready or self._error, timeout=120):
                raise TimeoutError("no copy of the PostgreSQL template within 120 s")
            if not self._ready:
                raise RuntimeError("copying the PostgreSQL template failed") from self._error
            copy = self._ready.pop()
            self._changed.notify_all()
            return copy

    def give_back(self, name: str) -> None:
        with self._changed:
            self._dropping.append(name)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        for name, _ in self._ready:
            _drop_pg_database(self._admin_url, name)


@pytest.fixture(scope="session")
def pg_copies(pg_template: str) -> Iterator[TemplateCopies | None]:
    if not PG_ADMIN_URL:
        yield None
        return
    copies = TemplateCopies(PG_ADMIN_URL, pg_template)
    try:
        yield copies
    finally:
        copies.close()


def _fresh_database(
    tmp_path: Path, file_name: str, pg_copies: TemplateCopies | None, sqlite_template: Path
) -> Iterator[str]:
    if pg_copies is not None:
        name, url = pg_copies.take()
        try:
            migrate(url)  # a no-op on the migrated copy; keeps the contract explicit
            yield url
        finally:
            pg_copies.give_back(name)
    else:
        shutil.copyfile(sqlite_template, tmp_path / file_name)
        url = f"sqlite:///{tmp_path / file_name}"
        migrate(url)  # likewise a no-op on the copy
        yield url


@pytest.fixture
def db_url(
    tmp_path: Path, pg_copies: TemplateCopies | None, sqlite_template: Path
) -> Iterator[str]:
    """URL of a fresh database migrated to head; dropped after the test."""
    yield from _fresh_database(tmp_path, "mailsvc.sqlite3", pg_copies, sqlite_template)


@pytest.fixture
def other_db_url(
    tmp_path: Path, pg_copies: TemplateCopies | None, sqlite_template: Path
) -> Iterator[str]:
    """A second fresh database (a second mailsvc instance in the same test)."""
    yield from _fresh_database(tmp_path, "other.sqlite3", pg_copies, sqlite_template)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> object:
    """One softhsm2 token for the session with the sample organisation key (see
    tests/softhsm.py); returns its Token."""
    from tests.signatures.pki import session_pki
    from tests.softhsm import make_token

    return make_token(tmp_path_factory.mktemp("softhsm"), session_pki().organisation)
