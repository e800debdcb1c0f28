"""Engines, sessions and schema migration."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"

# Execution option of a connection that only reads (see ``reading``).
READ_ONLY = "mailsvc_read_only"


def _sqlite_pragmas(busy_timeout: float) -> Any:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return pragmas


class WriteQueue:
    """A first-come, first-served lock over one SQLite database's transactions.

    Every transaction here is ``BEGIN IMMEDIATE``, so SQLite runs them one at a time; left
    to itself, a waiting connection polls with growing sleeps (the busy handler) and a late
    arrival often overtakes an early one, which made a 20-writer burst's p99 seconds long.
    Threads of this process queue here instead and take turns in arrival order; other
    processes (the CLI) still meet SQLite's own lock and busy timeout. A waiter that is not
    served within ``timeout`` goes ahead anyway and relies on SQLite's lock.

    The turn is handed over: each waiter sleeps on a lock of its own, and ``release``
    wakes the first waiter only, which holds the turn when it wakes. (A condition with
    ``notify_all`` woke every waiter at every release to find the one whose turn it was:
    under load, about as many futile wake-ups, each taking the GIL, as writers waiting.)
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()
        self._held = False
        self.timeout = timeout

    def acquire(self) -> bool:
        with self._lock:
            if not self._held:
                self._held = True  # no one holds it, so no one waits for it
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=self.timeout):
            return True  # handed over by ``release``: the turn is ours
        with self._lock:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        # handed over between the timeout and the lock above: the turn is ours after all
        return True

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes on; still held
            else:
                self._held = False


_write_queues: dict[str, WriteQueue] = {}
_write_queues_lock = threading.Lock()


def _write_queue(url: str) -> WriteQueue:
    with _write_queues_lock:
        return _write_queues.setdefault(url, WriteQueue())


class _QueuedConnection(sqlite3.Connection):
    """Gives the write turn back once COMMIT or ROLLBACK has really happened."""

    write_queue: WriteQueue | None = None

    def _give_back(self) -> None:
        queue, self.write_queue = self.write_queue, None
        if queue is not None:
            queue.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def make_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """``busy_timeout`` (SQLite): how long a transaction waits for a lock held by another
    process (the CLI, a backup) before it fails (and the SMTP client gets 451)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "timeout": busy_timeout,
                "check_same_thread": False,
                "factory": _QueuedConnection,
            },
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
        queue = _write_queue(str(engine.url))

        # SQLite's own locking is per statement; BEGIN IMMEDIATE makes write transactions
        # take the lock up front so concurrent writers queue instead of failing.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                # A reader (WAL): its own snapshot, neither our queue nor SQLite's lock.
                conn.exec_driver_sql("BEGIN DEFERRED")
                return
            dbapi = conn.connection.dbapi_connection
            if isinstance(dbapi, _QueuedConnection) and dbapi.write_queue is None:
                if queue.acquire():
                    dbapi.write_queue = queue
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if isinstance(dbapi, _QueuedConnection):
                    dbapi._give_back()
                raise

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for look-ups only (closed, never committed, at the end).

    On SQLite every other transaction is ``BEGIN IMMEDIATE`` and waits its turn in the
    process's write queue; a reader needs neither (WAL: it reads its own snapshot while a
    writer commits), so periodic checks and per-recipient look-ups made here never queue
    behind message acceptance nor make it wait. Writing in such a session is a bug (on
    SQLite it may fail with "database is locked"). On PostgreSQL this is a plain session.
    """
    with sessions() as session:
        session.connection(execution_options={READ_ONLY: True})
        yield session


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema up to date (from empty or from any earlier revision)."""
    command.upgrade(alembic_config(url), "head")
