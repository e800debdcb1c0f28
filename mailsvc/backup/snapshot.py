"""The database snapshot every archive is built around, and what the rest of the backup
asks it.

The snapshot is taken first: SQLite through the online backup API (one step, one read
transaction: writers carry on), PostgreSQL with ``pg_dump --format=custom`` inside a
REPEATABLE READ transaction whose snapshot we export (``pg_export_snapshot``), so the
dump and our own queries see exactly the same rows. ``cut`` is the wall-clock time just
before the snapshot: every row committed before it is in the snapshot.

The questions (see archive.py for the rule they serve):
* which blobs the snapshot references: values of every column named ``sha256`` or
  ``*_sha256``, in every table (the blob store is addressed by SHA-256);
* which messages are still ``stored`` (accepted, not yet handed to Dovecot): repair
  delivers them again after a restore;
* the state of one message for one mailbox.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mailsvc.backup.manifest import PGDUMP_MEMBER, SQLITE_MEMBER, ArchiveError
from mailsvc.db.base import utcnow
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import make_engine

MESSAGES = MessageRecord.__table__


def database_kind(database_url: str) -> str:
    backend = make_url(database_url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ArchiveError(f"database.url: cannot back up a {backend!r} database")
    return backend


def sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise ArchiveError("database.url: an in-memory SQLite database cannot be backed up")
    return Path(database).resolve()


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI for pg_dump/pg_restore/psql, and the environment holding the password
    (never on a command line, where ``ps`` shows it)."""
    url = make_url(database_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    url = url.set(drivername="postgresql", password=None)
    return url.render_as_string(hide_password=False), env


def canonical_mailbox(address: str) -> str:
    """The mailbox an address delivers to: lower case, ``+detail`` dropped."""
    local, _, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


def run_tool(argv: list[str], env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ArchiveError(f"{what}: {argv[0]} is not installed") from exc
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ArchiveError(f"{what} failed: {detail}")


@dataclass
class DatabaseSnapshot:
    kind: str
    file: Path  # the SQLite copy or the pg_dump file
    member: str  # its name in the archive
    cut: float  # time.time() just before the snapshot
    taken_at: datetime
    connection: Connection  # sees exactly the snapshot
    counts: dict[str, int] = field(default_factory=dict)  # message rows by state
    stored_queue_ids: frozenset[str] = frozenset()
    earliest_stored: float | None = None  # received_at of the oldest 'stored' row

    def load_facts(self) -> None:
        conn = self.connection
        self.counts = {
            str(state): int(n)
            for state, n in conn.execute(
                select(MESSAGES.c.state, func.count()).group_by(MESSAGES.c.state)
            )
        }
        stored = conn.execute(
            select(MESSAGES.c.queue_id, MESSAGES.c.received_at).where(MESSAGES.c.state == "stored")
        ).all()
        self.stored_queue_ids = frozenset(str(q) for q, _ in stored)
        times = [at.timestamp() for _, at in stored if at is not None]
        self.earliest_stored = min(times) if times else None

    def blob_references(self) -> set[str]:
        inspector = inspect(self.connection)
        refs: set[str] = set()
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                name = str(column["name"])
                if name != "sha256" and not name.endswith("_sha256"):
                    continue
                rows = self.connection.execute(
                    text(f'SELECT DISTINCT "{name}" FROM "{table}" WHERE "{name}" IS NOT NULL')
                )
                refs.update(str(v).lower() for (v,) in rows if v)
        return refs

    def states(self, queue_id: str, mailbox: str) -> set[str]:
        """States of the rows of message ``queue_id`` for ``mailbox`` (empty: no row)."""
        rows = self.connection.execute(
            select(MESSAGES.c.recipient, MESSAGES.c.state).where(MESSAGES.c.queue_id == queue_id)
        )
        return {str(state) for rcpt, state in rows if canonical_mailbox(rcpt) == mailbox}


@contextlib.contextmanager
def take_snapshot(database_url: str, workdir: Path) -> Iterator[DatabaseSnapshot]:
    kind = database_kind(database_url)
    if kind == "sqlite":
        with _sqlite_snapshot(sqlite_path(database_url), workdir) as snapshot:
            yield snapshot
    else:
        with _pg_snapshot(database_url, workdir) as snapshot:
            yield snapshot


@contextlib.contextmanager
def _sqlite_snapshot(source: Path, workdir: Path) -> Iterator[DatabaseSnapshot]:
    if not source.is_file():
        raise ArchiveError(f"database {source} does not exist (has `mailsvc init` been run?)")
    copy = workdir / "mailsvc.sqlite3"
    cut = time.time()
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)  # all pages in one step: one read transaction
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise ArchiveError(f"SQLite backup of {source} failed: {exc}") from exc
    taken_at = utcnow()
    engine = create_engine(f"sqlite:///file:{copy}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            snapshot = DatabaseSnapshot("sqlite", copy, SQLITE_MEMBER, cut, taken_at, conn)
            _load(snapshot)
            yield snapshot
    finally:
        engine.dispose()


@contextlib.contextmanager
def _pg_snapshot(database_url: str, workdir: Path) -> Iterator[DatabaseSnapshot]:
    dump = workdir / "mailsvc.pgdump"
    target, env = libpq_target(database_url)
    engine: Engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                cut = time.time()
                try:
                    exported = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                except SQLAlchemyError as exc:
                    raise ArchiveError(f"PostgreSQL snapshot failed: {exc}") from exc
                taken_at = utcnow()
                run_tool(
                    [
                        "pg_dump",
                        "--format=custom",
                        f"--snapshot={exported}",
                        f"--file={dump}",
                        f"--dbname={target}",
                    ],
                    env,
                    "pg_dump",
                )
                snapshot = DatabaseSnapshot("postgresql", dump, PGDUMP_MEMBER, cut, taken_at, conn)
                _load(snapshot)
                yield snapshot
    finally:
        engine.dispose()


def _load(snapshot: DatabaseSnapshot) -> None:
    try:
        snapshot.load_facts()
    except SQLAlchemyError as exc:
        raise ArchiveError(f"reading the database snapshot failed: {exc}") from exc
