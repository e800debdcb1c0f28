"""Mail the service itself writes: notices, alerts, reports and reminders.

One door for all of them: ``Mailer.send`` stores the message in the durable outbound
queue (``outbound_message``) and commits before it returns; the Mailer's worker task
(started and stopped by ``app.py``) then delivers it: DKIM-signed when a key is
configured, to local delivery (Dovecot LMTP) for our own domains or to the configured
smarthost for the rest. Temporary failures (no connection, 4xx) are retried after the
configured waits (1, 5, 15, 60 minutes ...) until ``give_up_hours``; a 5xx answer fails
the message at once. A failed message is logged and, unless it was itself an alert,
reported to the administrators (``on_failure``). The queue survives restarts: rows
left ``queued`` are delivered by the next worker.

The worker sleeps until it is woken (``wake``: every in-process caller that queued a row
calls it after its commit), until the earliest ``next_attempt_at`` it knows of, or for
``poll_seconds`` at most: other processes (the register and queue CLI) queue rows in their
own transaction and cannot wake it. Each pass first looks up the earliest due time in a
read-only transaction (``db.session.reading``: no write lock on SQLite), and claims rows
in a write transaction only when one is due; an idle queue never competes with message
acceptance for the database's write lock. Passes woken by new rows are paced (``PACE``, 0.1 s
between their starts): a row queued when the worker has been quiet goes at once, and under
load (a receipt per accepted document) one pass claims everything queued meanwhile. A
pass starts its attempts and does not wait for them (``IN_FLIGHT``): a slow receiving
server holds up its own rows only.

Mail our officials send to other servers (kind ``submission``, queued by the
acceptance transaction before the SMTP 250) goes through the same queue: routed by
``outbound.routing`` (directory route > MX > smarthost), one SMTP transaction for every
recipient of one message at one domain, DKIM-signed for its From: domain, retried 5
minutes doubling to an hour for ``max_lifetime_hours``, with a delay warning to the
sender after ``delay_warning_hours`` and a DSN bounce (``outbound.dsn``) on a permanent
failure or at expiry; never a DSN about a message from the null sender.

Messages the service writes carry ``Auto-Submitted`` and a null envelope sender, so no
other system answers them. The queue also carries one mailbox action, ``void-copy`` (move the
delivered copy of a recalled document out of INBOX), so that the clerk's decision and
its effects commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import OutboundSection
from mailsvc.db.base import utcnow
from mailsvc.db.session import reading
from mailsvc.delivery import LocalDelivery
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.outbound import queue
from mailsvc.outbound.dsn import DsnComposer, FailedRecipient
from mailsvc.outbound.models import SUBMISSION, VOID_COPY
from mailsvc.outbound.queue import RetryPolicy
from mailsvc.outbound.routing import RecipientResult, RouteError, RouteFinder, SmtpTransport
from mailsvc.time import iso_local

log = logging.getLogger(__name__)

# The folder a recalled document's copy is moved to: "Thu hồi" in IMAP's modified UTF-7.
RECALLED_FOLDER = "Thu h&HtM-i"
PARALLEL = 8  # deliveries at once
# Attempts claimed and not finished, at most (each waits for one of the PARALLEL slots and
# holds its row's message in memory): the worker claims no more until one finishes. A
# pass's attempts run on their own, so a slow receiving server (each of its answers may
# take up to the relay timeout) holds up its own rows only, never the next pass's.
IN_FLIGHT = 4 * PARALLEL
# Seconds at least between the starts of two passes that claim rows just queued: under
# load (a receipt per accepted document) a pass takes what was queued meanwhile, instead
# of one write transaction to claim and one to settle for nearly every row. A row queued
# when no pass has run for that long is claimed at once.
PACE = 0.1


class DeliveryError(MailsvcError):
    """One delivery attempt failed; ``permanent`` for a 5xx answer (never retried);
    ``alert`` False when the administrators need not hear of it (no relay configured)."""

    def __init__(self, message: str, *, permanent: bool, alert: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.alert = alert


class Relay(Protocol):
    async def send(self, sender: str, recipient: str, data: bytes) -> None: ...


class MailboxMover(Protocol):
    """Moves messages between a mailbox's folders (MailboxActions)."""

    async def move(
        self,
        address: str,
        to_folder: str,
        *,
        message_id: str | None = None,
        queue_id: str | None = None,
        from_folder: str = "INBOX",
        create: bool = True,
    ) -> int: ...


@dataclass(frozen=True)
class SubmissionPolicy:
    """Retries of mail from officials: ``first_wait`` doubling up to ``max_wait``, a
    delay warning after ``warn_after``, given up (bounced) after ``lifetime``."""

    first_wait: timedelta = timedelta(minutes=5)
    max_wait: timedelta = timedelta(hours=1)
    lifetime: timedelta = timedelta(days=5)
    warn_after: timedelta = timedelta(hours=4)

    @classmethod
    def from_settings(cls, section: OutboundSection) -> SubmissionPolicy:
        return cls(
            first_wait=timedelta(minutes=section.first_retry_minutes),
            max_wait=timedelta(minutes=section.max_retry_minutes),
            lifetime=timedelta(hours=section.max_lifetime_hours),
            warn_after=timedelta(hours=section.delay_warning_hours),
        )

    def wait_after(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.first_wait * (2 ** min(max(attempts, 1) - 1, 30)), self.max_wait)


@dataclass(frozen=True)
class Pending:
    """A claimed row, detached from its session."""

    id: int
    kind: str
    sender: str
    recipient: str
    about: str
    data: bytes
    attempts: int  # this attempt included
    created_at: datetime
    message_key: str = ""
    warned: bool = False

    @property
    def domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Outcome:
    """One attempt's result for one row."""

    ok: bool
    error: str = ""
    permanent: bool = False
    code: int = 0


# Told, inside the transaction that records them, what became of mail from officials:
# (outbound row id, "sent" | "failed", the other server's answer or our error).
SettledHook = Callable[[Session, Sequence[tuple[int, str, str]]], None]


@dataclass(frozen=True)
class FailedMessage:
    """What the administrators are told about a message given up."""

    id: int
    kind: str
    recipient: str
    attempts: int
    created_at: datetime
    error: str


class SmtpRelay:
    """Remote mail goes to a configured smarthost (closed networks route by agency)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        helo: str | None = None,
        timeout: float = 60.0,
        starttls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.helo = helo
        self.timeout = timeout
        # STARTTLS with a verified certificate unless explicitly disabled (relay_starttls).
        self.starttls = starttls
        self.ca_file = ca_file

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        try:
            # The client itself, not aiosmtplib.send: that refuses the null sender "".
            client = aiosmtplib.SMTP(
                hostname=self.host,
                port=self.port,
                local_hostname=self.helo,
                start_tls=True if self.starttls else False,
                validate_certs=True,
                cert_bundle=self.ca_file or None,
                timeout=self.timeout,
            )
            async with client:
                await client.sendmail(sender, [recipient], data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryError(
                f"relay refused {recipient}: {text}",
                permanent=bool(codes) and all(500 <= c < 600 for c in codes),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay answered {exc.code} {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"relay {self.host}:{self.port}: {type(exc).__name__}: {exc}", permanent=False
            ) from exc


class Mailer:
    def __init__(
        self,
        local: LocalDelivery,
        *,
        is_local_domain: Callable[[str], bool],
        relay: Relay | None = None,
        signer: Any = None,
        sessions: sessionmaker[Session] | None = None,
        retry: RetryPolicy | None = None,
        mover: MailboxMover | None = None,
        router: RouteFinder | None = None,
        transport: SmtpTransport | None = None,
        submission: SubmissionPolicy | None = None,
        dsn: DsnComposer | None = None,
        pace: float = PACE,
    ) -> None:
        self.local = local
        self.pace = pace
        self.is_local_domain = is_local_domain
        self.relay = relay
        # Remote mail by route (directory > MX > smarthost); without it, the relay only.
        self.router = router
        self.transport = transport
        self.submission = submission or SubmissionPolicy()
        self.dsn = dsn
        self.on_settled: SettledHook | None = None
        self.signer = signer  # mailsvc.outbound.dkim signer, when a DKIM key is configured
        self.sessions = sessions  # None: no queue, one attempt at once (tools)
        self.retry = retry or RetryPolicy()
        self.mover = mover
        # Told about every message given up (the app wires the admin alert).
        self.on_failure: Callable[[FailedMessage], Awaitable[None]] | None = None
        self.sent: list[tuple[str, str]] = []  # (kind, recipient) delivered, for tests
        self.voided: list[tuple[str, str]] = []  # (mailbox, queue id) of voided copies
        self._wake = asyncio.Event()
        self._stopping = False
        self._halt = asyncio.Event()  # set by stop(): a paced wait ends at once
        self.claims = 0  # passes begun because rows were queued (tests, benches)
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(PARALLEL)
        self._retries: list[tuple[int, datetime, str]] = []  # failed attempts, to write
        self._inflight: set[asyncio.Task[None]] = set()  # claimed attempts under way
        self._inflight_rows: dict[asyncio.Task[None], tuple[int, ...]] = {}  # their rows
        self._flusher: asyncio.Task[None] | None = None  # writing self._retries
        self._look = asyncio.Event()  # look at the queue again (retries written, room)
        self._to_record: list[tuple[list[Pending], asyncio.Future[None]]] = []  # sent rows
        self._recorder: asyncio.Task[None] | None = None  # writing self._to_record
        # When the next row is due, as read by the transaction that wrote failed attempts'
        # retry times (it ends with that read): the pass that follows (the look the write
        # triggers) uses it instead of a read of its own. It can only be early (a row
        # claimed since) or miss rows added since, which wake the worker themselves.
        self._due_hint: tuple[datetime | None] | None = None

    # -- the door ------------------------------------------------------------------------
    async def send(
        self, message: EmailMessage | bytes, recipient: str, *, kind: str, about: str = ""
    ) -> None:
        """Queue ``message`` for ``recipient`` (committed when this returns)."""
        if self.sessions is None:
            await self._attempt_unqueued(queue.as_bytes(message), recipient, kind)
            return
        await asyncio.to_thread(self._store, message, recipient, kind, about)
        log.info("%s to %s queued", kind, recipient)
        self.wake()

    def _store(self, message: EmailMessage | bytes, recipient: str, kind: str, about: str) -> None:
        assert self.sessions is not None
        values = queue.row_values(message, recipient, kind=kind, about=about)
        with self.sessions.begin() as session:
            queue.add(session, [values])

    def wake(self) -> None:
        """Rows due now were added: the next pass claims them without looking first."""
        self._wake.set()

    # -- the worker ----------------------------------------------------------------------
    def start(self) -> None:
        if self.sessions is None or self._task is not None:
            return
        self._stopping = False
        self._halt.clear()
        self._task = asyncio.create_task(self._run(), name="outbound-queue")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the deliveries under way finish (up to ``timeout``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = True
        self._halt.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        under_way = set(self._inflight)
        if under_way:
            _, late = await asyncio.wait(under_way, timeout=max(0.0, deadline - loop.time()))
            for attempt in late:  # its row stays claimed: tried again once the claim ends
                attempt.cancel()
            if late:
                await asyncio.wait(late)
        if self._recorder is not None:  # sent marks of attempts cancelled while recorded
            with contextlib.suppress(Exception):
                await asyncio.shield(self._recorder)
        try:
            await self._retries_written()
        except Exception:  # boundary: the rows stay claimed and are tried again later
            log.exception("outbound queue: failed attempts not recorded at stop")
        if self.transport is not None:
            await self.transport.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        woken = False
        claimed_at = float("-inf")
        while not self._stopping:
            if woken:
                # Paced (PACE): rows queued during the wait are claimed with the ones
                # that woke it, in one pass.
                self.claims += 1
                wait = claimed_at + self.pace - loop.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._halt.wait(), wait)
                    if self._stopping:
                        break
                claimed_at = loop.time()
            await self._room()
            if self._stopping:
                break
            self._wake.clear()
            self._look.clear()
            try:
                delay = await self.deliver_due(woken=woken, wait=False)
            except Exception:  # boundary: the worker must outlive a database hiccup
                log.exception("outbound queue: pass failed")
                delay = self.retry.poll_seconds
            if self._stopping:
                break
            if self._wake.is_set():  # rows added during the pass: claim them now
                woken = True
                continue
            woken = await self._sleep(delay)

    async def _room(self) -> None:
        """Wait while IN_FLIGHT attempts are under way (or until stop)."""
        while len(self._inflight) >= IN_FLIGHT and not self._stopping:
            halted = asyncio.ensure_future(self._halt.wait())
            try:
                await asyncio.wait({*self._inflight, halted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                halted.cancel()

    async def _sleep(self, delay: float) -> bool:
        """Until rows are added (True: claim at once), the queue is to be looked at again
        (failed attempts' retry times written, room for more attempts) or ``delay``."""
        waiters = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._look.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self._wake.is_set()

    def _dispatch(self, attempt: Awaitable[None], rows: Sequence[Pending]) -> asyncio.Task[None]:
        """Run one claimed attempt on its own (see IN_FLIGHT)."""
        task = asyncio.ensure_future(attempt)
        self._inflight.add(task)
        self._inflight_rows[task] = tuple(row.id for row in rows)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        was_full = len(self._inflight) >= IN_FLIGHT
        self._inflight.discard(task)
        self._inflight_rows.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            # the attempts catch their own failures; anything else is a bug, logged here
            log.error("outbound attempt ended unexpectedly", exc_info=task.exception())
        if self._retries and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_retries())
        if was_full:
            self._look.set()

    async def _flush_retries(self) -> None:
        """Write the failed attempts' next times: those failing meanwhile are taken by
        the same loop, so under load one transaction records many."""
        try:
            while self._retries:
                await self._write_retries()
        except Exception:  # boundary: the rows stay claimed and are tried again later
            log.exception("outbound queue: failed attempts not recorded")
        finally:
            self._flusher = None
        self._look.set()  # a retry may be due before the worker's next look

    async def _retries_written(self) -> None:
        """Every failed attempt's next time written (deliver_due's wait, stop)."""
        while self._retries or self._flusher is not None:
            if self._flusher is not None:
                await asyncio.shield(self._flusher)
            else:
                await self._write_retries()

    async def deliver_due(self, *, woken: bool = False, wait: bool = True) -> float:
        """One pass: claim every due row and start its attempt. Returns the seconds until
        the next is due (at most ``poll_seconds``). With nothing due, the pass is one
        read-only look-up. ``woken``: rows were just added (``wake``), so the pass claims
        at once instead of looking first; rows added while a pass claims (a receipt per
        accepted message under load) make it return 0 without looking, and the next pass
        claims them. ``wait``: return once the attempts have finished and their failures
        are written (the worker does not wait: its next pass starts while they run)."""
        hint, self._due_hint = self._due_hint, None  # a hint is for the next pass only
        if not woken:
            upcoming = hint[0] if hint is not None else await asyncio.to_thread(self._next_due)
            if upcoming is None or upcoming > utcnow():
                return self._until(upcoming)
        room = IN_FLIGHT - len(self._inflight)
        if room <= 0:  # deliver_due called beside the worker while it is full
            return 0.0
        under_way = frozenset(i for ids in self._inflight_rows.values() for i in ids)
        rows, upcoming = await asyncio.to_thread(self._claim_due, utcnow(), under_way, room)
        if rows:
            singles, groups = self._group(rows)
            attempts = [self._dispatch(self._attempt(row), [row]) for row in singles]
            attempts += [self._dispatch(self._attempt_remote(group), group) for group in groups]
            if wait:
                await asyncio.wait(attempts)
                await self._retries_written()
        if rows and self._wake.is_set():
            return 0.0  # rows were added during the pass: the next one claims them at once
        if wait:  # the attempts' retry times are written: read again
            upcoming = await asyncio.to_thread(self._next_due)
        if rows:
            return 0.0 if upcoming is not None and upcoming <= utcnow() else self._until(upcoming)
        return self._until(upcoming)

    def _until(self, when: datetime | None) -> float:
        if when is None:
            return self.retry.poll_seconds
        return max(0.0, min((when - utcnow()).total_seconds(), self.retry.poll_seconds))

    def _claim_due(
        self, now: datetime, under_way: frozenset[int] = frozenset(), limit: int = 50
    ) -> tuple[list[Pending], datetime | None]:
        """Claim up to ``limit`` due rows, except those this worker is still attempting (a
        send outlasting its claim, CLAIM, is not started a second time beside itself);
        and, read in the same transaction, when the next row is due."""
        assert self.sessions is not None
        taken: list[Pending] = []
        with self.sessions.begin() as session:
            conn = session.connection()  # Core statements: no ORM execution layer per row
            rows = [
                Pending(
                    r.id, r.kind, r.sender, r.recipient, r.about, r.data, r.attempts + 1,
                    r.created_at, r.message_key, r.warned_at is not None,
                )
                for r in queue.due_rows(conn, now, min(limit, 50))
                if r.id not in under_way and queue.claim(conn, r, now)
            ]  # fmt: skip
            taken.extend(rows)
            upcoming = queue.next_due(conn)
        return taken, upcoming

    def _next_due(self) -> datetime | None:
        assert self.sessions is not None
        with reading(self.sessions) as session:
            return queue.next_due(session.connection())

    async def _attempt(self, row: Pending) -> None:
        async with self._limit:
            try:
                if row.kind == VOID_COPY:
                    await self._void(row)
                else:
                    await self._transmit(row.data, row.recipient, row.sender)
            except DeliveryError as exc:
                await self._failed_attempt(row, str(exc), permanent=exc.permanent, alert=exc.alert)
                return
            except Exception as exc:  # boundary: one message never stops the queue
                log.exception("outbound %d (%s to %s) failed", row.id, row.kind, row.recipient)
                await self._failed_attempt(row, f"{type(exc).__name__}: {exc}", permanent=False)
                return
            await self._record_sent([row])
            if row.kind == VOID_COPY:
                self.voided.append((row.recipient, row.about))
            else:
                self.sent.append((row.kind, row.recipient))
            log.info("%s to %s sent (attempt %d)", row.kind, row.recipient, row.attempts)

    async def _record_sent(self, rows: list[Pending]) -> None:
        """Mark ``rows`` sent; returns once committed. The rows of attempts that finish
        while a record is being written go together in the next transaction (group
        commit: under load one write for several messages sent, not one each). The
        attempt waits for it, so its rows stay under way (never claimed again) until then."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_record.append((rows, done))
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._write_sent())
        await done

    async def _write_sent(self) -> None:
        try:
            while self._to_record:
                batch, self._to_record = self._to_record, []
                try:
                    await asyncio.to_thread(
                        self._settle_sent, [r for rows, _ in batch for r in rows]
                    )
                except Exception as exc:  # each attempt hears of it, as when it wrote alone
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._recorder = None

    async def _failed_attempt(
        self, row: Pending, error: str, *, permanent: bool, alert: bool = True
    ) -> None:
        now = utcnow()
        retry_at = now + self.retry.wait_after(row.attempts)
        if not permanent and retry_at < row.created_at + self.retry.give_up:
            # Written with the pass's other failures, in one transaction at its end (a
            # receiving server down fails every row of the pass alike); until then the
            # claim holds the row.
            self._retries.append((row.id, retry_at, error))
            log.warning(
                "%s to %s: attempt %d failed, retry at %s: %s",
                row.kind,
                row.recipient,
                row.attempts,
                iso_local(retry_at),
                error,
            )
            return
        await asyncio.to_thread(self._give_up, row.id, error)
        log.error(
            "%s to %s failed after %d attempt(s)%s: %s",
            row.kind,
            row.recipient,
            row.attempts,
            "" if permanent else " (gave up)",
            error,
        )
        if alert and self.on_failure is not None and not row.kind.startswith("alert-"):
            try:
                await self.on_failure(
                    FailedMessage(
                        row.id, row.kind, row.recipient, row.attempts, row.created_at, error
                    )
                )
            except Exception:  # boundary: the failure is logged and recorded already
                log.exception("could not alert about outbound %d", row.id)

    # -- mail to other servers, by route -------------------------------------------------
    def _group(self, rows: Sequence[Pending]) -> tuple[list[Pending], list[list[Pending]]]:
        """Rows for other servers, by (message, sender, domain): one transaction each."""
        if self.router is None or self.transport is None:
            return list(rows), []
        singles: list[Pending] = []
        groups: dict[tuple[str, str, str], list[Pending]] = {}
        for row in rows:
            if row.kind == VOID_COPY or self.is_local_domain(row.domain):
                singles.append(row)
                continue
            key = (row.message_key or f"#{row.id}", row.sender, row.domain)
            groups.setdefault(key, []).append(row)
        return singles, list(groups.values())

    async def _attempt_remote(self, rows: list[Pending]) -> None:
        assert self.router is not None and self.transport is not None
        async with self._limit:
            try:
                outcomes = await self._send_remote(rows)
            except Exception as exc:  # boundary: one message never stops the queue
                log.exception("outbound %s to %s failed", [r.id for r in rows], rows[0].domain)
                error = f"{type(exc).__name__}: {exc}"
                outcomes = {r.id: Outcome(False, error) for r in rows}
        sent = [r for r in rows if outcomes[r.id].ok]
        if sent:
            await self._record_sent(sent)
            for row in sent:
                self.sent.append((row.kind, row.recipient))
            log.info(
                "%s to %s sent (%d recipient(s))",
                sent[0].kind,
                sent[0].domain,
                len(sent),
            )
        failed = [r for r in rows if not outcomes[r.id].ok]
        submissions = [r for r in failed if r.kind == SUBMISSION]
        if submissions:
            await asyncio.to_thread(self._settle_failed_submissions, submissions, outcomes)
        for row in failed:
            if row.kind != SUBMISSION:
                out = outcomes[row.id]
                await self._failed_attempt(row, out.error, permanent=out.permanent)

    async def _send_remote(self, rows: list[Pending]) -> dict[int, Outcome]:
        assert self.router is not None and self.transport is not None
        first = rows[0]
        try:
            routes = await self.router.routes(first.domain)
        except RouteError as exc:
            return {r.id: Outcome(False, str(exc), exc.permanent) for r in rows}
        data = first.data
        if self.signer is not None:  # CPU (the body's hash, the RSA signature): off the loop
            data = await asyncio.to_thread(self.signer.sign, data)
        recipients = [r.recipient for r in rows]
        results: dict[str, RecipientResult] | None = None
        error: RouteError | None = None
        for route in routes:
            try:
                results = await self.transport.send(route, first.sender, recipients, data)
                log.info("%s to %s via %s", first.kind, first.domain, route)
                break
            except RouteError as exc:
                error = exc
                log.warning("%s to %s: %s", first.kind, first.domain, exc)
                if exc.permanent:
                    break
        if results is None:
            assert error is not None
            return {r.id: Outcome(False, str(error), error.permanent) for r in rows}
        outcomes: dict[int, Outcome] = {}
        for row in rows:
            answer = results.get(row.recipient) or RecipientResult(0, "no answer for recipient")
            if answer.ok:
                outcomes[row.id] = Outcome(True)
            else:
                text = f"{answer.code} {answer.text}".strip()
                outcomes[row.id] = Outcome(False, text, answer.permanent, answer.code)
        return outcomes

    def _settle_sent(self, rows: Sequence[Pending]) -> None:
        assert self.sessions is not None
        now = utcnow()
        with self.sessions.begin() as session:
            for row in rows:
                queue.mark_sent(session, row.id, now)
            mine = [(r.id, "sent", "") for r in rows if r.kind == SUBMISSION]
            if mine and self.on_settled is not None:
                self.on_settled(session, mine)

    def _settle_failed_submissions(
        self, rows: Sequence[Pending], outcomes: dict[int, Outcome]
    ) -> None:
        """Retry later, warn the sender once after ``warn_after``, or give up and bounce;
        all in one transaction (the DSN is queued with the decision)."""
        assert self.sessions is not None
        policy = self.submission
        now = utcnow()
        bounced: list[tuple[Pending, FailedRecipient, bool]] = []
        warned: list[tuple[Pending, FailedRecipient]] = []
        with self.sessions.begin() as session:
            for row in rows:
                out = outcomes[row.id]
                failed = FailedRecipient(row.recipient, out.error, out.code)
                retry_at = now + policy.wait_after(row.attempts)
                expired = retry_at - row.created_at >= policy.lifetime
                if not out.permanent and not expired:
                    queue.mark_retry(session, row.id, retry_at, out.error)
                    if not row.warned and now - row.created_at >= policy.warn_after:
                        queue.mark_warned(session, row.id, now)
                        warned.append((row, failed))
                    log.warning(
                        "submission to %s: attempt %d failed, retry at %s: %s",
                        row.recipient,
                        row.attempts,
                        iso_local(retry_at),
                        out.error,
                    )
                    continue
                queue.mark_failed(session, row.id, now, out.error)
                bounced.append((row, failed, expired and not out.permanent))
                log.error(
                    "submission to %s failed after %d attempt(s)%s: %s",
                    row.recipient,
                    row.attempts,
                    " (expired)" if expired and not out.permanent else "",
                    out.error,
                )
            if bounced and self.on_settled is not None:
                self.on_settled(session, [(r.id, "failed", f.diagnostic) for r, f, _ in bounced])
            self._queue_dsn(session, [(r, f) for r, f, _ in bounced], delayed=False,
                            expired=any(e for _, _, e in bounced))  # fmt: skip
            self._queue_dsn(session, warned, delayed=True, expired=False)
        if bounced or warned:
            self.wake()

    def _queue_dsn(
        self,
        session: Session,
        items: Sequence[tuple[Pending, FailedRecipient]],
        *,
        delayed: bool,
        expired: bool,
    ) -> None:
        """One DSN per (message, sender); never to the null sender (no bounce to a bounce)."""
        if self.dsn is None or not items:
            return
        by_message: dict[tuple[str, str], list[tuple[Pending, FailedRecipient]]] = {}
        for row, failed in items:
            if not row.sender:
                continue
            by_message.setdefault((row.message_key or f"#{row.id}", row.sender), []).append(
                (row, failed)
            )
        policy = self.submission
        for (_, sender), group in by_message.items():
            first = group[0][0]
            try:
                data = self.dsn.compose(
                    first.data,
                    sender,
                    [f for _, f in group],
                    queued_at=first.created_at,
                    delayed=delayed,
                    give_up_at=first.created_at + policy.lifetime,
                    lifetime=_duration_vi(policy.lifetime),
                    expired=expired,
                )
            except Exception:  # boundary: the decision stands even if its DSN cannot be built
                log.exception("cannot build the DSN for %s to %s", first.about, sender)
                continue
            queue.enqueue(
                session,
                data,
                sender,
                kind="dsn-delay" if delayed else "dsn-failure",
                about=first.about,
            )

    async def _write_retries(self) -> None:
        """The pass's failed attempts, each with its next attempt's time."""
        batch, self._retries = self._retries, []
        if batch:
            self._due_hint = (await asyncio.to_thread(self._retry_later, batch),)

    def _retry_later(self, batch: Sequence[tuple[int, datetime, str]]) -> datetime | None:
        """Write the retry times; return when the next row is due, read after them."""
        assert self.sessions is not None
        with self.sessions.begin() as session:
            conn = session.connection()
            queue.mark_retries(conn, batch)
            return queue.next_due(conn)

    def _give_up(self, row_id: int, error: str) -> None:
        assert self.sessions is not None
        with self.sessions.begin() as session:
            queue.mark_failed(session, row_id, utcnow(), error)

    # -- one attempt ---------------------------------------------------------------------
    async def _transmit(self, data: bytes, recipient: str, sender: str) -> None:
        if self.signer is not None:
            data = await asyncio.to_thread(self.signer.sign, data)
        domain = recipient.rpartition("@")[2].lower()
        if self.is_local_domain(domain):
            try:
                await self.local.deliver(recipient, data, sender=sender)
            except MailsvcError as exc:
                raise DeliveryError(
                    f"LMTP: {exc}", permanent=bool(getattr(exc, "permanent", False))
                ) from exc
            except OSError as exc:
                raise DeliveryError(f"LMTP: {exc}", permanent=False) from exc
        elif self.relay is not None:
            await self.relay.send(sender, recipient, data)
        else:
            raise DeliveryError(
                "no outbound relay configured ([outbound] relay)", permanent=True, alert=False
            )

    async def _void(self, row: Pending) -> None:
        if self.mover is None:
            raise DeliveryError("no mailbox actions configured", permanent=True)
        try:
            moved = await self.mover.move(
                row.recipient, RECALLED_FOLDER, queue_id=row.about, from_folder="*"
            )
        except NotFoundError as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        except (MailsvcError, OSError) as exc:
            raise DeliveryError(str(exc), permanent=False) from exc
        log.info("recalled copy %s in %s: %d moved", row.about, row.recipient, moved)

    async def _attempt_unqueued(self, data: bytes, recipient: str, kind: str) -> None:
        try:
            await self._transmit(data, recipient, "")
        except DeliveryError as exc:
            log.warning("%s to %s not sent: %s", kind, recipient, exc)
            return
        self.sent.append((kind, recipient))
        log.info("%s sent to %s", kind, recipient)


def _duration_vi(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours >= 24 and hours % 24 == 0:
        return f"{int(hours // 24)} ngày"
    if hours >= 1:
        return f"{hours:g} giờ"
    return f"{span.total_seconds() / 60:g} phút"
