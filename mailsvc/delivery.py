"""Acceptance: the unit of work that turns a checked message into a promise.

Order (architecture.md, "Nothing lost"):
  1. the original bytes are written to the blob store and fsynced;
  2. one transaction records a MessageRecord per recipient plus whatever the
     recorders add (register entries, history) and commits;
  3. each recipient's copy is handed to Dovecot over LMTP; the row becomes
     ``delivered`` after Dovecot's 250;
  4. only then does the SMTP client get its 250.
A crash between 2 and 3 leaves rows in state ``stored``; ``repair`` delivers them
at start-up, whenever Dovecot (re)starts and, for rows older than a minute, every
minute. Recipients at other servers (a submission from an official) get a row in state
``relayed`` and, in the same transaction, a row in the durable outbound queue
(``Submissions``): the queue is the promise for them, the worker delivers after the
250. A message seen again (same Message-ID and content, same recipient) links to its
first record: it is delivered at most once and takes no new register number.

Exactly once. Dovecot may have stored a copy and died (or we died) before its 250 was
read and the row marked: before a ``stored`` row from an earlier attempt is delivered,
the recipient's folder is searched for its ``X-Mailsvc-Queue-Id`` and the copy read
(master-user IMAP); a copy found there only marks the row. Within this process one
delivery of a row runs at a time.

Nothing half-written. Before the blob is written, the blob and Maildir file systems must
have room for the message plus ``min_free_bytes`` (else ``452 4.3.1``). When the
transaction fails (database down or locked, disk full), a blob this attempt created is
removed again, unless another message in flight uses the same content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import headers as trace
from mailsvc.db.base import utcnow
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import reading
from mailsvc.errors import MailsvcError, StorageFullError
from mailsvc.message import Direction, InboundMessage
from mailsvc.metrics import Metrics
from mailsvc.outcome import Accepted, DeferReason, Deferred, Entry
from mailsvc.store.blobs import BlobStore
from mailsvc.verdict import Action, Verdict

log = logging.getLogger(__name__)

JUNK = "Junk"
RELAYED = "relayed"  # MessageRecord.state of a recipient at another server (queued out)


class LocalDelivery(Protocol):
    """Hands a message to the mailbox engine (Dovecot LMTP). Raises on anything but 250:
    ``MailsvcError`` (with ``permanent`` True for a 5xx answer) or ``OSError``."""

    async def deliver(
        self, recipient: str, data: bytes, folder: str = "INBOX", *, sender: str = ""
    ) -> None: ...


class MailboxFlagger(Protocol):
    """Sets IMAP flags on a delivered copy and finds copies (Dovecot master-user session)."""

    async def holds(self, address: str, *, queue_id: str, folder: str = "INBOX") -> bool: ...

    async def add_flags(
        self,
        address: str,
        flags: Sequence[str],
        *,
        queue_id: str | None = None,
        folder: str = "INBOX",
    ) -> int: ...


@dataclass
class Annotations:
    """What recorders add to the delivered copy: header fields and IMAP flags."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    entries: list[Entry] = field(default_factory=list)  # register entries made

    def merge(self, other: Annotations) -> None:
        self.headers.extend(other.headers)
        self.flags |= other.flags
        self.entries.extend(other.entries)


@dataclass(frozen=True)
class _Rows:
    """The parts of an acceptance's rows known before its transaction."""

    key: str  # message_key
    folder: str
    remote: frozenset[str]  # recipients the submission relays elsewhere
    summary: dict[str, Any]  # the verdict's summary (the verdict column)
    blocks: dict[str, str]  # local recipient -> trace and check header fields


class Recorder(Protocol):
    """Writes what a message means into the acceptance transaction (never commits).

    ``prepare`` runs first, outside the transaction (in a thread): slow work such as
    storing attachment blobs, so the database's write lock is held briefly."""

    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None: ...

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations: ...

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None: ...


class Submissions(Protocol):
    """Commits mail for recipients at other servers to the outbound queue
    (mailsvc.outgoing.submission.SubmissionQueue)."""

    def is_remote(self, recipient: str) -> bool: ...

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> None: ...

    def after_commit(self) -> None: ...


class Receipts(Protocol):
    """Queues the sender's receipt in the acceptance transaction
    (mailsvc.notify.notices.NoticeFollower): it commits with the register entries it
    reports: a crash after the 250 cannot lose it, and a message whose delivery failed
    (4xx) and that the sender sends again (a duplicate by then) is answered exactly once."""

    def on_accept(
        self, session: Session, msg: InboundMessage, verdict: Verdict, entries: Sequence[Entry]
    ) -> bool: ...  # True when a receipt was queued

    def after_commit(self) -> None: ...  # the queued receipt is due: wake the queue


class Follower(Protocol):
    """Work done after the SMTP reply: notices, alerts (must not raise). ``accepted``
    carries the local recipients' rows and the register entries made."""

    async def after_accept(
        self, msg: InboundMessage, verdict: Verdict, accepted: Accepted
    ) -> None: ...

    async def after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None: ...


_RECORDS = cast(Table, MessageRecord.__table__)
_INSERT_RECORD = insert(_RECORDS).returning(_RECORDS.c.id)
_SET_HEADERS = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("rid"))
    .values(headers=bindparam("block"), flags=bindparam("marks"))
)
_SEEN = select(_RECORDS.c.id).where(_RECORDS.c.message_key == bindparam("key")).limit(1)
# A refused batch of delivered marks is tried again after these many seconds, doubling.
_MARK_RETRY_FIRST = 0.5
_MARK_RETRY_MAX = 10.0
# How long a queued delivered mark waits for an acceptance to carry it (_fold_marks)
# before the marker writes it in a transaction of its own (only while other messages
# are on their way: Acceptance.busy).
_MARK_FOLD_WAIT = 0.1
_MARK_DELIVERED = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("rid"))
    .values(state="delivered", delivered_at=bindparam("at"))
)


def message_key(msg: InboundMessage) -> str:
    """Same Message-ID and same content: the same message."""
    return hashlib.sha256(f"{msg.message_id}\0{msg.sha256}".encode()).hexdigest()


def _protocol(msg: InboundMessage) -> str:
    if msg.direction is Direction.FETCHED:
        return "IMAPS" if msg.tls else "IMAP"
    base = "ESMTP"
    if msg.tls:
        base += "S"
    if msg.authenticated_as:
        base += "A"
    return base


class Acceptance:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        local: LocalDelivery,
        *,
        hostname: str,
        recorders: Sequence[Recorder] = (),
        followers: Sequence[Follower] = (),
        flagger: MailboxFlagger | None = None,
        submissions: Submissions | None = None,
        receipts: Receipts | None = None,
        metrics: Metrics | None = None,
        storage: Sequence[Path] = (),
        min_free_bytes: int = 0,
        mark_fold_wait: float = _MARK_FOLD_WAIT,
        busy: Callable[[], int] | None = None,
    ) -> None:
        self.submissions = submissions
        self.receipts = receipts
        self.metrics = metrics
        self.sessions = sessions
        self.blobs = blobs
        self.local = local
        self.hostname = hostname
        self.recorders = list(recorders)
        self.followers = list(followers)
        self.flagger = flagger
        self.storage = list(storage)
        self.min_free_bytes = min_free_bytes
        self._background: set[asyncio.Task[None]] = set()
        self._delivering: dict[int, asyncio.Lock] = {}
        # Group commit of "delivered" marks: rows waiting for the next batch, and the task
        # writing the current one (one transaction for every copy delivered meanwhile).
        # The next acceptance's transaction takes the queued marks too (folded, one
        # statement, no transaction of their own); the marker writes what no acceptance
        # took within _MARK_FOLD_WAIT. The list is shared with the acceptance threads.
        self._marks: list[tuple[int, datetime]] = []
        self._marks_lock = threading.Lock()
        self.mark_fold_wait = mark_fold_wait
        # How many messages are between end of DATA and their reply (the SMTP server's
        # count): the marker waits for an acceptance to carry its marks only when others
        # are on their way; alone, it writes them at once.
        self.busy = busy
        self._marker: asyncio.Future[None] | None = None
        # Set while drain() waits: a marker that cannot write gives up instead of retrying.
        self._draining = asyncio.Event()
        # Rows this process delivered whose mark is not committed yet (or failed to be):
        # another acceptance of the same message, or repair, must not deliver them again.
        self._delivered_unmarked: set[int] = set()
        self._blobs_in_use: Counter[str] = Counter()

    # -- accepted mail -----------------------------------------------------------------
    async def accept(self, msg: InboundMessage, verdict: Verdict) -> Accepted | Deferred:
        self._blobs_in_use[msg.sha256] += 1
        try:
            records, fresh, entries, receipt, folded = await asyncio.to_thread(
                self._store, msg, verdict
            )
        finally:
            self._blobs_in_use[msg.sha256] -= 1
            if not self._blobs_in_use[msg.sha256]:
                del self._blobs_in_use[msg.sha256]
            self._wake_marker()  # marks this transaction took and gave back, if any
        self._delivered_unmarked.difference_update(rid for rid, _ in folded)
        if self.submissions is not None and any(r.state == RELAYED for r in records):
            self.submissions.after_commit()
        reason = verdict.deciding.reason if verdict.deciding is not None else ""
        register_number = ", ".join(e.number_text for e in entries if e.number is not None)
        for record in records:
            if record.state in ("delivered", RELAYED):
                continue
            try:
                # Rows of an earlier attempt (another queue id: a retry, or the same message
                # to more recipients) may already have a copy in the mailbox.
                await self._deliver(
                    record,
                    verify=not fresh or record.queue_id != msg.queue_id,
                    verdict=reason,
                    register=register_number,
                    raw=msg.raw,
                )
            except (MailsvcError, OSError) as exc:
                log.error("%s: LMTP delivery to %s failed: %s", msg.queue_id, record.recipient, exc)
                if receipt and self.receipts is not None:
                    self.receipts.after_commit()  # the document is registered all the same
                # The rows stay 'stored': a retry of this message, or repair, delivers them.
                return Deferred(DeferReason.DELIVERY, f"LMTP to {record.recipient}: {exc}")
        if receipt and self.receipts is not None:
            # Due once the copies are in the mailboxes, as the 250 goes out: the receipt
            # should not overtake the reply it follows.
            self.receipts.after_commit()
        if fresh:
            local = [r for r in records if r.state != RELAYED]
            accepted = Accepted(msg.queue_id, entries=tuple(entries), records=tuple(local))
            self._spawn(self._after_accept(msg, verdict, accepted))
            return accepted
        return Accepted(records[0].queue_id, duplicate=True)

    def _store(
        self, msg: InboundMessage, verdict: Verdict
    ) -> tuple[list[MessageRecord], bool, list[Entry], bool, list[tuple[int, datetime]]]:
        """Room check, blob (fsynced), then the transaction: one trip to a thread (each
        trip costs the event loop a submit and a wake-up). A blob this call created is
        removed again if the transaction fails and no other copy of the message uses it."""
        self._check_room(len(msg.raw))
        created = self._prepare(msg, verdict)
        try:
            return self._commit(msg, verdict, self._rows(msg, verdict))
        except BaseException:
            if created and self._blobs_in_use[msg.sha256] == 1:
                self._remove_blob(msg.sha256)
            raise

    def _check_room(self, size: int) -> None:
        """Raise StorageFullError unless every storage file system has room for ``size``
        bytes (twice: the blob and the Maildir copy) plus ``min_free_bytes``."""
        for path in self.storage:
            try:
                st = os.statvfs(path)
            except OSError:
                continue
            free = st.f_bavail * st.f_frsize
            if free < 2 * size + self.min_free_bytes:
                raise StorageFullError(
                    f"{path}: {free} bytes free, need {2 * size + self.min_free_bytes}"
                )

    def _prepare(self, msg: InboundMessage, verdict: Verdict) -> bool:
        """Store the blob (and the recorders' blobs); True when this call created it."""
        existed = self.blobs.exists(msg.sha256)
        self.blobs.put(msg.raw, msg.sha256)
        if verdict.action is Action.DELIVER:
            for recorder in self.recorders:
                recorder.prepare(msg, verdict)
        return not existed

    def _remove_blob(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            self.blobs.path_for(digest).unlink()
            log.info("removed blob %s of a message that was not accepted", digest[:12])

    def _rows(self, msg: InboundMessage, verdict: Verdict) -> _Rows:
        """What the transaction writes that needs no database: worked out before it, so
        the write lock is held for the statements only (on SQLite every acceptance
        waits for it in turn)."""
        remote = {r for r in msg.rcpt_tos if self.submissions and self.submissions.is_remote(r)}
        return _Rows(
            key=message_key(msg),
            folder=JUNK if verdict.action is Action.QUARANTINE else "INBOX",
            remote=frozenset(remote),
            summary=verdict.summary(),
            blocks={
                r: self._header_block(msg, verdict, r) for r in msg.rcpt_tos if r not in remote
            },
        )

    def _commit(
        self, msg: InboundMessage, verdict: Verdict, rows: _Rows
    ) -> tuple[list[MessageRecord], bool, list[Entry], bool, list[tuple[int, datetime]]]:
        """The rows for each recipient, whether they are new, the register entries made,
        whether a receipt was queued, and the delivered marks this transaction wrote."""
        folded: list[tuple[int, datetime]] = []
        try:
            with self.sessions.begin() as session:
                # The hot path's statements are Core, run on the session's connection: the
                # same transaction, without the ORM's execution layer (half the CPU of
                # ``session.execute`` for these three).
                conn = session.connection()
                folded = self._fold_marks(conn)
                result = self._write(session, conn, msg, verdict, rows)
        except BaseException:
            self._requeue_marks(folded)  # rolled back with the message's rows
            raise
        return (*result, folded)

    def _fold_marks(self, conn: Connection) -> list[tuple[int, datetime]]:
        """Write the queued delivered marks in the caller's transaction (group commit
        without a transaction of its own: under load each acceptance carries the marks of
        the copies delivered since the last one). In a savepoint: marks the database
        refuses go back to the queue and the message is accepted all the same."""
        with self._marks_lock:
            marks, self._marks = self._marks, []
        if not marks:
            return marks
        try:
            with conn.begin_nested():
                conn.execute(_MARK_DELIVERED, [{"rid": rid, "at": at} for rid, at in marks])
        except DBAPIError:
            self._requeue_marks(marks)  # the marker tries them again
            return []
        except BaseException:
            self._requeue_marks(marks)
            raise
        return marks

    def _requeue_marks(self, marks: Sequence[tuple[int, datetime]]) -> None:
        if marks:
            with self._marks_lock:
                self._marks[:0] = marks

    def _write(
        self,
        session: Session,
        conn: Connection,
        msg: InboundMessage,
        verdict: Verdict,
        rows: _Rows,
    ) -> tuple[list[MessageRecord], bool, list[Entry], bool]:
        """The message's rows, in ``session``'s transaction (see :meth:`_commit`).
        Almost always a new message: the rows are loaded as objects only for a retry."""
        key = rows.key
        seen = conn.execute(_SEEN, {"key": key}).first()
        existing = (
            session.scalars(select(MessageRecord).where(MessageRecord.message_key == key)).all()
            if seen is not None
            else []
        )
        known = {r.recipient: r for r in existing}
        if known and all(r in known for r in msg.rcpt_tos):
            return [known[r] for r in msg.rcpt_tos], False, [], False
        folder, remote, summary = rows.folder, rows.remote, rows.summary
        new = []
        # Core inserts (no unit of work): the rows are plain objects the recorders and
        # the delivery read, written with their header blocks; once more below only when
        # a recorder adds to them (a register number, flags).
        for rcpt in msg.rcpt_tos:
            if rcpt in known:
                continue
            values: dict[str, Any] = {
                "queue_id": msg.queue_id,
                "message_key": key,
                "message_id": msg.message_id[:998],
                "sha256": msg.sha256,
                "size": len(msg.raw),
                "mail_from": msg.mail_from,
                "recipient": rcpt,
                "direction": msg.direction.value,
                "client_ip": msg.client_ip,
                "authenticated_as": msg.authenticated_as,
                "received_at": msg.received_at,
                "action": verdict.action.value,
                "folder": "" if rcpt in remote else folder,
                "flags": "",
                "verdict": summary,
                "headers": "" if rcpt in remote else rows.blocks[rcpt],
                "state": RELAYED if rcpt in remote else "stored",
                "delivered_at": None,
            }
            row_id = conn.execute(_INSERT_RECORD, values).scalar_one()
            new.append(MessageRecord(id=row_id, **values))
        relayed = [r for r in new if r.state == RELAYED]
        new = [r for r in new if r.state != RELAYED]
        if relayed:
            assert self.submissions is not None
            self.submissions.on_accept(session, msg, verdict, relayed)
        notes = Annotations()
        receipt = False
        if verdict.action is Action.DELIVER and new:
            for recorder in self.recorders:
                notes.merge(recorder.on_accept(session, msg, verdict, new))
            if self.receipts is not None:
                receipt = self.receipts.on_accept(session, msg, verdict, notes.entries)
        if new and (notes.headers or notes.flags):
            added = trace.prepend(b"", notes.headers).decode("ascii")
            flags = " ".join(sorted(notes.flags))
            for record in new:
                record.headers += added
                record.flags = flags
            conn.execute(
                _SET_HEADERS,
                [{"rid": r.id, "block": r.headers, "marks": r.flags} for r in new],
            )
        new += relayed
        records = [known.get(r) or next(n for n in new if n.recipient == r) for r in msg.rcpt_tos]
        return records, True, notes.entries, receipt

    def _header_block(self, msg: InboundMessage, verdict: Verdict, recipient: str) -> str:
        """The trace and check fields of ``recipient``'s copy (what recorders add, such
        as the register number, follows them)."""
        results = [f.auth_result for f in verdict.findings if f.auth_result]
        checks = (
            "; ".join(f"{f.stage}={f.status.value} ({f.reason})" for f in verdict.findings)
            or "none"
        )
        fields: list[tuple[str, str]] = [
            trace.received(
                helo=msg.client_helo,
                client_ip=msg.client_ip,
                hostname=self.hostname,
                protocol=_protocol(msg),
                queue_id=msg.queue_id,
                recipient=recipient,
                when=msg.received_at,
            ),
            trace.authentication_results(self.hostname, results),
            ("X-Mailsvc-Queue-Id", msg.queue_id),
            ("X-Mailsvc-Verdict", f"{verdict.action.value}; policy={verdict.policy_version}"),
            ("X-Mailsvc-Checks", checks),
        ]
        return trace.prepend(b"", fields).decode("ascii")

    async def _deliver(
        self,
        record: MessageRecord,
        *,
        verify: bool = False,
        verdict: str = "",
        register: str = "",
        raw: bytes | None = None,
    ) -> None:
        """Deliver one stored row, once. ``verify``: the row comes from an earlier attempt
        (a retry, or repair), so first look for its copy in the mailbox. ``raw``: the
        message's bytes when they are in memory (the blob holds the same; repair reads it)."""
        lock = self._delivering.setdefault(record.id, asyncio.Lock())
        try:
            async with lock:
                if record.id in self._delivered_unmarked:
                    # Delivered by this process; its mark not written yet (or its batch
                    # failed: queued again, the update is idempotent).
                    record.state = "delivered"
                    self._mark(record.id)
                    return
                if verify:
                    if await asyncio.to_thread(self._is_delivered, record.id):
                        record.state = "delivered"
                        return
                    if await self._already_in_mailbox(record):
                        await asyncio.to_thread(self._mark_delivered, record.id)
                        record.state = "delivered"
                        log.warning(
                            "%s: copy for %s was already in the mailbox; not delivered again",
                            record.queue_id,
                            record.recipient,
                        )
                        return
                await self._deliver_now(record, verdict=verdict, register=register, raw=raw)
        finally:
            if not lock.locked() and self._delivering.get(record.id) is lock:
                del self._delivering[record.id]

    def _is_delivered(self, record_id: int) -> bool:
        with reading(self.sessions) as session:
            row = session.get(MessageRecord, record_id)
            return row is not None and row.state == "delivered"

    async def _already_in_mailbox(self, record: MessageRecord) -> bool:
        if self.flagger is None:
            return False
        return await self.flagger.holds(
            record.recipient, queue_id=record.queue_id, folder=record.folder
        )

    async def _deliver_now(
        self,
        record: MessageRecord,
        *,
        verdict: str = "",
        register: str = "",
        raw: bytes | None = None,
    ) -> None:
        if raw is None:
            raw = await asyncio.to_thread(self.blobs.get, record.sha256)
        data = record.headers.encode("ascii") + trace.remove_forged_auth_results(raw, self.hostname)
        started = time.monotonic()
        try:
            await self.local.deliver(record.recipient, data, record.folder, sender=record.mail_from)
        except (MailsvcError, OSError) as exc:
            if self.metrics is not None:
                self.metrics.deliveries.labels(record.folder, "failed").inc()
            _log_delivery(record, len(data), started, verdict, register, f"deferred ({exc})")
            raise
        lmtp = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.deliveries.labels(record.folder, "delivered").inc()
            self.metrics.lmtp_seconds.observe(lmtp)
        self._mark(record.id)
        record.state = "delivered"
        _log_delivery(record, len(data), started, verdict, register, "delivered (lmtp 250)")
        if self.flagger is not None and record.flags:
            try:
                await self.flagger.add_flags(
                    record.recipient,
                    record.flags.split(),
                    queue_id=record.queue_id,
                    folder=record.folder,
                )
            except Exception:  # boundary: a flag is a convenience, the mail is delivered
                log.exception("%s: could not flag the delivered copy", record.queue_id)

    def _mark(self, record_id: int) -> None:
        """Queue the row's 'delivered' mark. The marker task writes the marks queued
        meanwhile in one transaction (group commit), and the reply does not wait for it:
        the copy is in the mailbox and the message was committed before, so the mark is
        bookkeeping. A mark the database refuses is tried again until it is taken
        (:meth:`_write_marks`). Should it never be written (the process killed first), the
        row stays 'stored' and repair (at the next start, and every minute for rows over a
        minute old) finds the copy by searching the mailbox for the queue id, marks it and
        does not deliver it again; a backup leaves such a row's copy out of the archive
        (its restore delivers it from the blob)."""
        self._delivered_unmarked.add(record_id)
        with self._marks_lock:
            self._marks.append((record_id, utcnow()))
        self._wake_marker()

    def _wake_marker(self) -> None:
        """Start the marker task if marks are queued and it is not running."""
        if self._marks and (self._marker is None or self._marker.done()):
            self._marker = self._spawn(self._write_marks())

    async def _write_marks(self) -> None:
        """Write the queued marks, a batch per transaction. A batch the database refuses
        (down, locked) stays queued and is tried again, 0.5 s later and then twice as long
        each time up to 10 s, so the rows are marked soon after the database is back, not a
        minute later by repair; while :meth:`drain` waits, a refused batch is left to
        repair (the rows stay 'stored': the next start finds their copies)."""
        delay = _MARK_RETRY_FIRST
        failing = False
        while True:
            if not failing and not self._draining.is_set() and self._others_coming():
                # The next acceptances may take them first (_fold_marks): under load,
                # almost always; the marker then finds nothing left to write.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._draining.wait(), self.mark_fold_wait)
            with self._marks_lock:
                batch, self._marks = self._marks, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self._mark_many, batch)
            except Exception:  # boundary: the rows stay 'stored' until a batch goes in
                self._requeue_marks(batch)  # still known here as delivered (_delivered_unmarked)
                if not failing:
                    log.exception(
                        "could not mark %d delivered row(s); trying again until the database "
                        "takes them (repair finds their copies if the service stops first)",
                        len(batch),
                    )
                failing = True
                if self._draining.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._draining.wait(), delay)
                delay = min(delay * 2, _MARK_RETRY_MAX)
                continue
            if failing:
                log.info("marked %d delivered row(s) once the database took them", len(batch))
                failing, delay = False, _MARK_RETRY_FIRST
            self._delivered_unmarked.difference_update(rid for rid, _ in batch)

    def _others_coming(self) -> bool:
        """Other messages than the one whose mark was just queued are on their way to an
        acceptance (it may still count itself)."""
        return self.busy is not None and self.busy() > 1

    def _mark_many(self, marks: Sequence[tuple[int, datetime]]) -> None:
        with self.sessions.begin() as session:
            session.connection().execute(
                _MARK_DELIVERED, [{"rid": rid, "at": at} for rid, at in marks]
            )

    def _mark_delivered(self, record_id: int) -> None:
        with self.sessions.begin() as session:
            row = session.get(MessageRecord, record_id)
            if row is not None:
                row.state = "delivered"
                row.delivered_at = utcnow()

    async def repair(self, older_than: timedelta | None = None) -> int:
        """Deliver every stored-but-undelivered copy (after a crash, or when Dovecot is back;
        ``older_than``: only rows received at least that long ago). Returns how many."""
        pending = await asyncio.to_thread(self._pending, older_than)
        done = 0
        for record in pending:
            if record.id in self._delivering:
                continue  # being delivered right now by its own message
            try:
                await self._deliver(record, verify=True)
                done += 1
            except (MailsvcError, OSError) as exc:
                log.error(
                    "repair: %s to %s still failing: %s", record.queue_id, record.recipient, exc
                )
        if pending:
            log.warning("repair: delivered %d of %d pending messages", done, len(pending))
        return done

    def _pending(self, older_than: timedelta | None = None) -> list[MessageRecord]:
        query = select(MessageRecord).where(MessageRecord.state == "stored")
        if older_than is not None:
            query = query.where(MessageRecord.received_at <= utcnow() - older_than)
        with reading(self.sessions) as session:
            return list(session.scalars(query.order_by(MessageRecord.id)).all())

    async def run_repairer(self, interval: float = 60.0) -> None:
        """Every ``interval`` seconds, deliver rows left ``stored`` for longer than that
        (a transient LMTP failure whose sender never retried). Runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.repair(older_than=timedelta(seconds=interval))
            except Exception:  # boundary: try again next round
                log.exception("repair round failed")

    # -- refused mail --------------------------------------------------------------------
    async def refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        if verdict.action is Action.REJECT and self.recorders:
            await asyncio.to_thread(self._record_refusal, msg, verdict)
        if verdict.action is Action.REJECT:
            self._spawn(self._after_refuse(msg, verdict))

    def _record_refusal(self, msg: InboundMessage, verdict: Verdict) -> None:
        with self.sessions.begin() as session:
            for recorder in self.recorders:
                recorder.on_refuse(session, msg, verdict)

    # -- after the reply ------------------------------------------------------------------
    async def _after_accept(
        self, msg: InboundMessage, verdict: Verdict, accepted: Accepted
    ) -> None:
        for follower in self.followers:
            try:
                await follower.after_accept(msg, verdict, accepted)
            except Exception:  # boundary
                log.exception("%s: follow-up %s failed", msg.queue_id, type(follower).__name__)

    async def _after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        for follower in self.followers:
            try:
                await follower.after_refuse(msg, verdict)
            except Exception:  # boundary
                log.exception("%s: follow-up %s failed", msg.queue_id, type(follower).__name__)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self) -> None:
        """Wait for follow-up work (notices, delivered marks) before shutdown; marks the
        database refuses meanwhile are left to repair instead of being retried."""
        self._draining.set()
        try:
            while self._background:
                await asyncio.gather(*list(self._background), return_exceptions=True)
        finally:
            self._draining.clear()


def _log_delivery(
    record: MessageRecord, size: int, lmtp_started: float, verdict: str, register: str, status: str
) -> None:
    """One Postfix-style line per delivery: queue id, to, from, size, delay (since the
    message arrived) and delays (before LMTP / LMTP), verdict, folder, register number."""
    now = time.monotonic()
    received = record.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    delay = max(0.0, (datetime.now(UTC) - received).total_seconds())
    lmtp = now - lmtp_started
    log.info(
        "%s: to=<%s>, from=<%s>, size=%d, delay=%.2f, delays=%.2f/%.3f, verdict=%s, "
        "reason=%s, folder=%s, register=%s, status=%s",
        record.queue_id,
        record.recipient,
        record.mail_from,
        size,
        delay,
        max(0.0, delay - lmtp),
        lmtp,
        record.action,
        verdict or "-",
        record.folder,
        register or "-",
        status,
    )
