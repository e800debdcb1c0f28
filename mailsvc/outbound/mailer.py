"""Mail the service itself writes: notices, alerts, reports and reminders.

One door for all of them: ``Mailer.send`` stores the message in the durable outbound
queue (``outbound_message``) and commits before it returns; the Mailer's worker task
(started and stopped by ``app.py``) then delivers it: DKIM-signed when a key is
configured, to local delivery (Dovecot LMTP) for our own domains or to the configured
smarthost for the rest. Temporary failures (no connection, 4xx) are retried after the
configured waits (1, 5, 15, 60 minutes ...) until ``give_up_hours``; a 5xx answer fails
the message at once. A failed message is logged and, unless it was itself an alert,
reported to the administrators (``on_failure``). The queue survives restarts: rows
left ``queued`` are delivered by the next worker. Other processes (the register CLI)
queue rows in their own transaction; the worker reads the queue every ``poll_seconds``.

Messages carry ``Auto-Submitted`` and a null envelope sender, so no other system
answers them. The queue also carries one mailbox action, ``void-copy`` (move the
delivered copy of a recalled document out of INBOX), so that the clerk's decision and
its effects commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.base import utcnow
from mailsvc.delivery import LocalDelivery
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.outbound import queue
from mailsvc.outbound.models import VOID_COPY
from mailsvc.outbound.queue import RetryPolicy

log = logging.getLogger(__name__)

# The folder a recalled document's copy is moved to: "Thu hồi" in IMAP's modified UTF-7.
RECALLED_FOLDER = "Thu h&HtM-i"
PARALLEL = 8  # deliveries at once


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
        self, host: str, port: int, *, helo: str | None = None, timeout: float = 60.0
    ) -> None:
        self.host, self.port = host, port
        self.helo = helo
        self.timeout = timeout

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        try:
            # The client itself, not aiosmtplib.send: that refuses the null sender "".
            client = aiosmtplib.SMTP(
                hostname=self.host,
                port=self.port,
                local_hostname=self.helo,
                start_tls=False,
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
    ) -> None:
        self.local = local
        self.is_local_domain = is_local_domain
        self.relay = relay
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
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(PARALLEL)

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
        with self.sessions.begin() as session:
            queue.enqueue(session, message, recipient, kind=kind, about=about)

    def wake(self) -> None:
        """Look at the queue now (rows were added)."""
        self._wake.set()

    # -- the worker ----------------------------------------------------------------------
    def start(self) -> None:
        if self.sessions is None or self._task is not None:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbound-queue")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the deliveries under way finish (up to ``timeout``), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = await self.deliver_due()
            except Exception:  # boundary: the worker must outlive a database hiccup
                log.exception("outbound queue: pass failed")
                delay = self.retry.poll_seconds
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def deliver_due(self) -> float:
        """One pass: attempt every due row. Returns the seconds until the next is due
        (at most ``poll_seconds``)."""
        now = utcnow()
        rows = await asyncio.to_thread(self._claim_due, now)
        if rows:
            await asyncio.gather(*(self._attempt(row) for row in rows))
        upcoming = await asyncio.to_thread(self._next_due)
        if rows:
            return 0.0 if upcoming is not None and upcoming <= utcnow() else self._until(upcoming)
        return self._until(upcoming)

    def _until(self, when: datetime | None) -> float:
        if when is None:
            return self.retry.poll_seconds
        return max(0.0, min((when - utcnow()).total_seconds(), self.retry.poll_seconds))

    def _claim_due(self, now: datetime) -> list[Pending]:
        assert self.sessions is not None
        taken: list[Pending] = []
        with self.sessions.begin() as session:
            rows = [
                Pending(
                    r.id, r.kind, r.sender, r.recipient, r.about, r.data, r.attempts + 1,
                    r.created_at,
                )
                for r in queue.due_rows(session, now)
                if queue.claim(session, r, now)
            ]  # fmt: skip
            taken.extend(rows)
        return taken

    def _next_due(self) -> datetime | None:
        assert self.sessions is not None
        with self.sessions() as session:
            return queue.next_due(session)

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
            await asyncio.to_thread(self._finish, queue.mark_sent, row.id)
            if row.kind == VOID_COPY:
                self.voided.append((row.recipient, row.about))
            else:
                self.sent.append((row.kind, row.recipient))
            log.info("%s to %s sent (attempt %d)", row.kind, row.recipient, row.attempts)

    def _finish(self, mark: Callable[[Session, int, datetime], None], row_id: int) -> None:
        assert self.sessions is not None
        with self.sessions.begin() as session:
            mark(session, row_id, utcnow())

    async def _failed_attempt(
        self, row: Pending, error: str, *, permanent: bool, alert: bool = True
    ) -> None:
        now = utcnow()
        retry_at = now + self.retry.wait_after(row.attempts)
        if not permanent and retry_at < row.created_at + self.retry.give_up:
            await asyncio.to_thread(self._retry_later, row.id, retry_at, error)
            log.warning(
                "%s to %s: attempt %d failed, retry at %s: %s",
                row.kind,
                row.recipient,
                row.attempts,
                retry_at.isoformat(timespec="seconds"),
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

    def _retry_later(self, row_id: int, when: datetime, error: str) -> None:
        assert self.sessions is not None
        with self.sessions.begin() as session:
            queue.mark_retry(session, row_id, when, error)

    def _give_up(self, row_id: int, error: str) -> None:
        assert self.sessions is not None
        with self.sessions.begin() as session:
            queue.mark_failed(session, row_id, utcnow(), error)

    # -- one attempt ---------------------------------------------------------------------
    async def _transmit(self, data: bytes, recipient: str, sender: str) -> None:
        if self.signer is not None:
            data = self.signer.sign(data)
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
            moved = await self.mover.move(row.recipient, RECALLED_FOLDER, queue_id=row.about)
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
