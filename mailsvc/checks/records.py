"""Mailbox checks recorded from Dovecot's event log (``HOME/dovecot/events.log``).

A check is an authenticated IMAP session that selected or examined INBOX (first time
in that session), except our own service sessions (logins with a master user).
``EventLogReader.poll()`` reads the lines appended since the saved ``LogCursor``
("dovecot-events", file identity ``dev:inode`` + byte offset) and writes, in ONE
transaction per batch together with the new cursor:

- a successful IMAP login → an ``ImapSession`` row (user, master user, IP, IMAP ID);
- a successful SELECT/EXAMINE of INBOX → one ``MailboxCheck`` per session, with the
  login's IP and client and the number of messages delivered to that mailbox since
  its previous check;
- an IMAP ID sent after login → the client name on the session (and on its check).

Nothing is lost and nothing is counted twice: a partial last line is left for the next
poll; after a crash the lines after the cursor are read again and rows already there are
kept (sessions and checks are unique by Dovecot's session id). A login and the SELECT
that follows it reach the log from different Dovecot processes, so under load a SELECT
can be logged before its login: such events wait in memory (the saved cursor stays
before them) until the login is read, or ``grace`` seconds, after which the SELECT is
recorded from its own fields. Rotation (the path now names another file): the old file
is read to its end, then the new one from 0; a file shorter than the cursor was
truncated and is read from 0.

Most lines are no events (deliveries, disconnects): a batch without events opens no
transaction (the write lock stays with message acceptance); the position moves on in
memory and is saved with the next batch that has events, after ``SAVE_AFTER_BYTES`` of
such lines, or by ``flush`` when the recorder stops. Lines read again after a crash are
skipped again. An idle poll costs a stat of the log and no database work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.models import ImapSession, LogCursor, MailboxCheck
from mailsvc.db.base import utcnow
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import reading
from mailsvc.jobs.context import JobContext
from mailsvc.mailboxes.events import MailboxEvent, parse_line

log = logging.getLogger(__name__)

CURSOR_NAME = "dovecot-events"
BATCH_BYTES = 256 * 1024
IN_CHUNK = 500  # session ids per IN (...) query
SAVE_AFTER_BYTES = 1024 * 1024  # lines without events read past before the cursor is saved

_Row = TypeVar("_Row", ImapSession, MailboxCheck)


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


@dataclass(frozen=True)
class _Waiting:
    """Events of one session whose login has not been read yet."""

    offset: int  # where the first of them starts in the current file
    since: float  # time.monotonic() when first seen
    events: tuple[MailboxEvent, ...]


@dataclass
class _Batch:
    """What one transaction sees and changes."""

    db: Session
    sessions: dict[str, ImapSession]
    checks: dict[str, MailboxCheck]
    waiting: dict[str, _Waiting]
    recorded: int = 0
    last_check: dict[str, datetime] = field(default_factory=dict)


class EventLogReader:
    """Tails events.log into ImapSession and MailboxCheck rows (synchronous; one instance
    per log; call ``poll`` from one thread at a time)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        path: Path,
        *,
        name: str = CURSOR_NAME,
        grace: float = 30.0,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.sessions = sessions
        self.path = Path(path)
        self.name = name
        self.grace = grace
        self.batch_bytes = batch_bytes
        self._fh: BinaryIO | None = None
        self._file_id = ""
        self._pos = 0
        self._loaded = False
        self._waiting: dict[str, _Waiting] = {}
        self._unsaved = 0  # bytes read past (no events) since the cursor was saved

    # ------------------------------------------------------------------ public
    def poll(self) -> int:
        """Read everything complete that is in the log now; return the checks recorded."""
        if not self._loaded:
            self._load_cursor()
        recorded = 0
        while True:
            if self._fh is None and not self._open_current():
                break
            assert self._fh is not None
            self._detect_truncation()
            chunk = os.pread(self._fh.fileno(), self.batch_bytes, self._pos)
            end = chunk.rfind(b"\n") + 1
            if end == 0 and len(chunk) == self.batch_bytes:
                # A single line longer than a batch: read it whole.
                chunk = self._read_long_line()
                end = chunk.rfind(b"\n") + 1
            if end > 0:
                recorded += self._apply(chunk[:end])
                continue
            if self._switch_if_rotated():
                continue
            break
        if self._expired():
            recorded += self._apply(b"")
        return recorded

    def flush(self) -> None:
        """Save the cursor if lines without events were read past since it was saved."""
        if self._unsaved and self._fh is not None:
            self._save_cursor_only()

    @property
    def offset(self) -> int:
        """How far the current file has been read (for tests and logs)."""
        return self._pos

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def waiting(self) -> int:
        """Sessions whose events wait for their login (for tests and logs)."""
        return len(self._waiting)

    # ------------------------------------------------------------- the file
    def _load_cursor(self) -> None:
        with reading(self.sessions) as db:
            cursor = db.get(LogCursor, self.name)
            saved_id, offset = (cursor.file_id, cursor.offset) if cursor else ("", 0)
        self._loaded = True
        if not saved_id:
            return
        for candidate in self._candidates():
            try:
                fh = open(candidate, "rb")  # kept open across polls
            except OSError:
                continue
            if file_id(os.fstat(fh.fileno())) == saved_id:
                self._fh, self._file_id, self._pos = fh, saved_id, offset
                if candidate != self.path:
                    log.info("checks: finishing rotated log %s from byte %d", candidate, offset)
                return
            fh.close()
        if offset:
            log.warning(
                "checks: %s (file %s) is gone; reading %s from its start",
                self.path,
                saved_id,
                self.path,
            )

    def _candidates(self) -> list[Path]:
        """The log itself, then rotated copies next to it (events.log.1, ...)."""
        rotated: list[Path] = []
        with contextlib.suppress(OSError):
            rotated = sorted(
                p
                for p in self.path.parent.iterdir()
                if p.name.startswith(self.path.name + ".") and not p.name.endswith(".gz")
            )
        return [self.path, *rotated]

    def _open_current(self) -> bool:
        try:
            fh = open(self.path, "rb")  # kept open across polls
        except FileNotFoundError:
            return False
        self._fh, self._file_id, self._pos = fh, file_id(os.fstat(fh.fileno())), 0
        return True

    def _detect_truncation(self) -> None:
        assert self._fh is not None
        size = os.fstat(self._fh.fileno()).st_size
        if size < self._pos:
            log.warning("checks: %s shrank below byte %d; reading it from 0", self.path, self._pos)
            self._restart_file_at_zero()

    def _switch_if_rotated(self) -> bool:
        """At the end of the open file: move to the file now at ``path`` once Dovecot has
        started writing there (so nothing more comes to the old one)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if file_id(st) == self._file_id or st.st_size == 0:
            return False
        assert self._fh is not None
        # The writer reopened: one last look at the old file, then switch.
        tail = os.pread(self._fh.fileno(), self.batch_bytes, self._pos)
        if b"\n" in tail:
            return True
        if tail:
            log.warning("checks: %d bytes without a line end left in the rotated log", len(tail))
        log.info("checks: %s was rotated; reading the new file from 0", self.path)
        self._fh.close()
        self._fh = None
        if not self._open_current():
            return False
        self._restart_file_at_zero()
        self._save_cursor_only()
        return True

    def _restart_file_at_zero(self) -> None:
        self._pos = 0
        self._waiting = {s: _Waiting(0, w.since, w.events) for s, w in self._waiting.items()}

    def _read_long_line(self) -> bytes:
        assert self._fh is not None
        size = self.batch_bytes
        while True:
            size *= 2
            chunk = os.pread(self._fh.fileno(), size, self._pos)
            if b"\n" in chunk or len(chunk) < size:
                return chunk

    def _expired(self) -> bool:
        limit = time.monotonic() - self.grace
        return any(w.since <= limit for w in self._waiting.values())

    # ------------------------------------------------------------ the database
    def _cursor_offset(self, waiting: dict[str, _Waiting], pos: int) -> int:
        return min([pos, *(w.offset for w in waiting.values())])

    def _save_cursor_only(self) -> None:
        with self.sessions.begin() as db:
            self._write_cursor(db, self._cursor_offset(self._waiting, self._pos))
        self._unsaved = 0

    def _write_cursor(self, db: Session, offset: int) -> None:
        cursor = db.get(LogCursor, self.name)
        if cursor is None:
            cursor = LogCursor(name=self.name)
            db.add(cursor)
        cursor.file_id = self._file_id
        cursor.offset = offset
        cursor.updated_at = utcnow()

    def _apply(self, data: bytes) -> int:
        """Apply complete lines ``data`` (starting at the current position) and the
        expired waits, with the new cursor, in one transaction."""
        events: list[tuple[int, MailboxEvent]] = []
        offset = self._pos
        for raw in data.splitlines(keepends=True):
            event = parse_line(raw.decode("utf-8", errors="replace"))
            if event is not None and event.session:
                events.append((offset, event))
            offset += len(raw)
        new_pos = self._pos + len(data)
        if not events and not self._expired():
            # Nothing to record: move on without a transaction (see the module's doc).
            self._pos = new_pos
            self._unsaved += len(data)
            if self._unsaved >= SAVE_AFTER_BYTES:
                self._save_cursor_only()
            return 0
        wanted = {e.session for _, e in events} | set(self._waiting)
        with self.sessions.begin() as db:
            batch = _Batch(
                db,
                sessions=_rows_by_session(db, ImapSession, wanted),
                checks=_rows_by_session(db, MailboxCheck, wanted),
                waiting=dict(self._waiting),
            )
            for at_offset, event in events:
                _apply_event(batch, event, at_offset)
            _expire(batch, time.monotonic() - self.grace)
            self._write_cursor(db, self._cursor_offset(batch.waiting, new_pos))
        # Committed: only now does the in-memory state move on.
        self._pos = new_pos
        self._unsaved = 0
        self._waiting = batch.waiting
        if batch.recorded:
            log.info("checks: %d recorded from %s", batch.recorded, self.path)
        return batch.recorded


def _rows_by_session(db: Session, model: type[_Row], wanted: Iterable[str]) -> dict[str, _Row]:
    keys = sorted(wanted)
    rows: dict[str, _Row] = {}
    for i in range(0, len(keys), IN_CHUNK):
        part = keys[i : i + IN_CHUNK]
        for row in db.scalars(select(model).where(model.session.in_(part))):
            rows[row.session] = row
    return rows


def _apply_event(batch: _Batch, event: MailboxEvent, offset: int) -> None:
    if event.kind == "login":
        if not event.success or event.service != "imap":
            return
        known = batch.sessions.get(event.session)
        if known is None:
            known = ImapSession(
                session=event.session,
                user=event.user,
                master_user=event.master_user,
                remote_ip=event.remote_ip,
                client=event.client,
                login_at=event.at,
            )
            batch.db.add(known)
            batch.sessions[event.session] = known
        waited = batch.waiting.pop(event.session, None)
        for later in waited.events if waited else ():
            _apply_event(batch, later, offset)
        return
    if not event.success:
        return
    if event.kind == "select" and event.mailbox.upper() != "INBOX":
        return
    known = batch.sessions.get(event.session)
    if known is None:
        if event.kind == "select" and event.session in batch.checks:
            return  # recorded earlier without its login (after the grace period)
        waited = batch.waiting.get(event.session)
        batch.waiting[event.session] = (
            _Waiting(offset, time.monotonic(), (event,))
            if waited is None
            else _Waiting(waited.offset, waited.since, (*waited.events, event))
        )
        return
    if event.kind == "id":
        if event.client:
            known.client = event.client
            check = batch.checks.get(event.session)
            if check is not None:
                check.client = event.client
        return
    if known.master_user or event.session in batch.checks:
        return  # a service session, or not the session's first INBOX selection
    _record(batch, event, known.user, known.remote_ip or event.remote_ip, known.client)


def _expire(batch: _Batch, limit: float) -> None:
    """Waits older than the grace period: record their SELECT from its own fields."""
    for session, waited in list(batch.waiting.items()):
        if waited.since > limit:
            continue
        del batch.waiting[session]
        client = ""
        for event in waited.events:
            if event.kind == "id" and event.client:
                client = event.client
                check = batch.checks.get(session)
                if check is not None:
                    check.client = client
            elif event.kind == "select" and session not in batch.checks:
                log.warning(
                    "checks: no login seen for session %s of %s; recording its SELECT anyway",
                    session,
                    event.user,
                )
                _record(batch, event, event.user, event.remote_ip, client)


def _record(batch: _Batch, event: MailboxEvent, mailbox: str, remote_ip: str, client: str) -> None:
    check = MailboxCheck(
        mailbox=mailbox,
        at=event.at,
        source="imap",
        session=event.session,
        remote_ip=remote_ip,
        client=client,
        new_messages=count_new_messages(batch.db, mailbox, event.at),
    )
    batch.db.add(check)
    batch.db.flush()  # the next check of this mailbox counts from this one
    batch.checks[event.session] = check
    batch.recorded += 1


def count_new_messages(db: Session, mailbox: str, at: datetime) -> int:
    """Messages delivered to ``mailbox`` after its previous check and up to ``at``."""
    previous = db.scalar(
        select(func.max(MailboxCheck.at)).where(
            MailboxCheck.mailbox == mailbox, MailboxCheck.at < at
        )
    )
    query = select(func.count()).where(
        MessageRecord.recipient == mailbox,
        MessageRecord.state == "delivered",
        MessageRecord.delivered_at <= at,
    )
    if previous is not None:
        query = query.where(MessageRecord.delivered_at > previous)
    return int(db.scalar(query) or 0)


# ------------------------------------------------------------------ retention
def purge_checks(session: Session, before: datetime) -> int:
    """Delete checks and IMAP login rows older than ``before``; return how many rows."""
    checks = session.execute(delete(MailboxCheck).where(MailboxCheck.at < before))
    logins = session.execute(delete(ImapSession).where(ImapSession.login_at < before))
    return int(checks.rowcount or 0) + int(logins.rowcount or 0)  # type: ignore[attr-defined]


async def purge_checks_job(ctx: JobContext) -> str:
    """Retention job: drop check records older than ``checks.retention_days``."""
    days = ctx.settings.checks.retention_days
    before = ctx.now - timedelta(days=days)

    def run() -> int:
        with ctx.sessions.begin() as session:
            return purge_checks(session, before)

    removed = await asyncio.to_thread(run)
    return f"purged {removed} check and IMAP session rows older than {days} days"


# ------------------------------------------------------------------ the task
class CheckRecorder:
    """Runs ``EventLogReader.poll`` every ``interval`` seconds in a worker thread.

    A failing batch is logged and retried at the next poll (the cursor did not move);
    ``stop`` lets the running poll finish, then returns.
    """

    def __init__(self, reader: EventLogReader, interval: float) -> None:
        self.reader = reader
        self.interval = interval
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="check-recorder")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await asyncio.to_thread(self.reader.flush)
        except Exception:  # boundary: the lines after the saved cursor are read again
            log.exception("checks: saving the cursor of %s failed", self.reader.path)
        self.reader.close()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.reader.poll)
            except Exception:  # boundary: one bad batch never ends the loop
                log.exception("checks: reading %s failed; retrying", self.reader.path)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)


def checks_of(
    session: Session,
    *,
    mailbox: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[MailboxCheck]:
    """Checks in time order, filtered by mailbox and ``since <= at < until``."""
    query = select(MailboxCheck).order_by(MailboxCheck.at, MailboxCheck.id)
    if mailbox:
        query = query.where(MailboxCheck.mailbox == mailbox.strip().lower())
    if since is not None:
        query = query.where(MailboxCheck.at >= since)
    if until is not None:
        query = query.where(MailboxCheck.at < until)
    return session.scalars(query).all()
