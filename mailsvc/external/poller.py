"""Fetching external mailboxes: one asyncio task per configured mailbox.

Each poll: SELECT the folder, compare its UIDVALIDITY with ours, list the UIDs above the
last one handled, and for each, in UID order: fetch → pipeline → ``Acceptance`` (blob
fsync, commit, LMTP) → record (UIDVALIDITY, UID, outcome) in our database. Only then does
the UID count as taken, so a stop or crash at any point loses nothing: the next poll
fetches the message again and ``Acceptance`` links it to the first copy (same
Message-ID and content), so it is delivered once.

- Refused by the pipeline: left on the remote server, recorded (outcome ``refused``,
  audit entry ``external.refused``) and never fetched again.
- Try later (a dependency is down, LMTP failed): the poll stops there, the UID is not
  advanced, and the mailbox is polled again after ``min(poll_seconds, 60)`` seconds.
- UIDVALIDITY changed: every message is fetched again; the ones already accepted are
  recognised as duplicates and not delivered twice.

Between polls the task waits in IMAP IDLE when the server offers it (new mail is fetched
at once; a full poll still runs every ``poll_seconds``), otherwise it logs out and polls
again after ``poll_seconds``. Errors reconnect with exponential backoff. Every completed
poll is a ``MailboxCheck`` (source ``poll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from aioimaplib import AioImapException
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.checks.models import MailboxCheck
from mailsvc.config import ExternalMailbox, Settings
from mailsvc.db.base import utcnow
from mailsvc.db.session import reading
from mailsvc.errors import ConfigError, MailsvcError
from mailsvc.external.imap import RemoteSession, read_password
from mailsvc.external.models import ExternalFetch, ExternalState
from mailsvc.message import Direction, InboundMessage
from mailsvc.metrics import Metrics
from mailsvc.outcome import Accepted
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.smtp import replies
from mailsvc.smtp.handler import AcceptanceService, check_and_act, new_queue_id, queue_id_var
from mailsvc.smtp.lookups import MailboxLookup, RecipientStatus
from mailsvc.verdict import Action

log = logging.getLogger(__name__)

CLIENT = "mailsvc-poller"
MAX_IDLE_SECONDS = 29 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
MAX_RETRY_SECONDS = 60.0
REQUEST_CHECK_SECONDS = 2.0
STOP_GRACE_SECONDS = 30.0


@dataclass
class PollResult:
    """What one poll did."""

    uidvalidity: int
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    vanished: int = 0
    deferred: str = ""  # why the poll stopped early (try later), "" when it ran through
    at: datetime = field(default_factory=utcnow)

    @property
    def fetched(self) -> int:
        return self.accepted + self.duplicates + self.refused

    def count(self, outcome: str) -> None:
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "refused":
            self.refused += 1
        else:
            self.vanished += 1


def check_address(cfg: ExternalMailbox) -> str:
    """The external mailbox's address, as recorded in mailbox checks."""
    user = cfg.username.lower()
    return user if "@" in user else f"{user}@{cfg.host.lower()}"


def return_path(raw: bytes) -> str:
    """The envelope sender the remote server recorded (Return-Path), or "" (null sender)."""
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    value = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n").get("Return-Path")
    if value is None:
        return ""
    address = email.utils.parseaddr(str(value))[1].strip().lower()
    return address if "@" in address else ""


class ExternalPoller:
    """Fetches one external mailbox until stopped."""

    def __init__(
        self,
        cfg: ExternalMailbox,
        *,
        password_file: Path,
        ca_file: Path | None,
        sessions: sessionmaker[Session],
        runner: PipelineRunner,
        acceptance: AcceptanceService,
        lookup: MailboxLookup,
        max_message_size: int,
        metrics: Metrics | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.password_file = password_file
        self.ca_file = ca_file
        self.sessions = sessions
        self.runner = runner
        self.acceptance = acceptance
        self.lookup = lookup
        self.max_message_size = max_message_size
        self.metrics = metrics
        self.timeout = timeout
        self.wake = asyncio.Event()
        self.polls = 0  # completed polls since start
        self.poll_started: datetime | None = None
        self._stopping = False
        self._polling = False
        self._task: asyncio.Task[None] | None = None

    @property
    def retry_seconds(self) -> float:
        return min(self.cfg.poll_seconds, MAX_RETRY_SECONDS)

    @property
    def idle_seconds(self) -> float:
        return min(self.cfg.poll_seconds, MAX_IDLE_SECONDS)

    # -- task ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"external:{self.name}")

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop: a poll under way ends after the message in hand is accepted and recorded,
        and is itself recorded; a connection attempt, IDLE or a pause ends at once."""
        self._stopping = True
        self.wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self._polling:
            task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            log.warning("external %s: poll still busy after %.0f s; cancelled", self.name, grace)
            task.cancel()
        except asyncio.CancelledError:
            pass
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Connect, poll, IDLE or sleep, reconnect with backoff: until stopped."""
        backoff = 1.0
        cap = max(self.cfg.poll_seconds, 1.0)
        while not self._stopping:
            try:
                delay = await self._connect_and_poll()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except (MailsvcError, AioImapException, OSError, TimeoutError) as exc:
                # server down or gone mid-session, login refused, bad password file
                text = str(exc) if isinstance(exc, MailsvcError) else f"{type(exc).__name__}: {exc}"
                log.warning("external %s: %s; retrying in %.0f s", self.name, text, backoff)
                await self._record_error(text)
                delay, backoff = backoff, min(backoff * 2, cap)
            except Exception as exc:  # boundary: one mailbox's failure never stops the rest
                log.exception("external %s: poll failed; retrying in %.0f s", self.name, backoff)
                await self._record_error(f"{type(exc).__name__}: {exc}")
                delay, backoff = backoff, min(backoff * 2, cap)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        if self._stopping or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def _connect_and_poll(self) -> float:
        """One connection: poll, then IDLE and poll again while the server allows it.
        Returns how long to wait before the next connection."""
        password = await asyncio.to_thread(
            read_password, self.password_file, f"external.{self.name}.password_file"
        )
        async with RemoteSession(
            self.cfg, password, self.ca_file, self.timeout, max_size=self.max_message_size
        ) as remote:
            use_idle = self.cfg.idle and remote.offers_idle
            await asyncio.to_thread(self._set_mode, use_idle)
            while True:
                result = await self.poll(remote)
                if result.deferred:
                    return self.retry_seconds
                if not use_idle:
                    return self.cfg.poll_seconds
                if self._stopping:
                    return 0
                news = await remote.wait_for_news(self.idle_seconds, self.wake)
                if self._stopping:
                    return 0
                if remote.lost.is_set():
                    raise MailsvcError(f"IMAP {self.cfg.host}:{self.cfg.port}: connection lost")
                log.debug("external %s: %s", self.name, "new mail" if news else "poll due")

    # -- one poll ------------------------------------------------------------------------
    async def poll(self, remote: RemoteSession) -> PollResult:
        """Take every new message, in UID order, then record the poll as a check."""
        self._polling = True
        try:
            return await self._poll(remote)
        finally:
            self._polling = False

    async def _poll(self, remote: RemoteSession) -> PollResult:
        self.wake.clear()
        self.poll_started = utcnow()
        selected = await remote.select()
        result = PollResult(uidvalidity=selected.uidvalidity, at=self.poll_started)
        status = await self.lookup.recipient_status(self.cfg.deliver_to)
        if status is not RecipientStatus.LOCAL:
            raise MailsvcError(
                f"deliver_to {self.cfg.deliver_to}: {status.value} mailbox; nothing fetched"
            )
        last_uid = await asyncio.to_thread(self._begin, result.uidvalidity)
        pending = await remote.new_messages(last_uid)
        for uid, size in pending:
            if self._stopping:
                break
            outcome = await self._take(remote, result.uidvalidity, uid, size)
            if outcome.startswith("deferred"):
                result.deferred = outcome
                break
            result.count(outcome)
        await asyncio.to_thread(self._record_poll, result, remote.peer_ip)
        self.polls += 1
        log.info(
            "external %s: poll uidvalidity=%d fetched=%d accepted=%d duplicate=%d refused=%d%s",
            self.name,
            result.uidvalidity,
            result.fetched,
            result.accepted,
            result.duplicates,
            result.refused,
            f" deferred: {result.deferred}" if result.deferred else "",
        )
        return result

    async def _take(self, remote: RemoteSession, uidvalidity: int, uid: int, size: int) -> str:
        """Handle one UID; return its outcome, or ``deferred: ...`` to stop the poll."""
        if size > self.max_message_size:
            log.warning("external %s: UID %d is %d bytes, over the limit", self.name, uid, size)
            await asyncio.to_thread(
                self._record_fetch,
                uidvalidity,
                uid,
                "refused",
                reason="message-too-large",
                size=size,
            )
            return "refused"
        raw = await remote.fetch(uid)
        if raw is None:
            log.warning("external %s: UID %d vanished before it was fetched", self.name, uid)
            await asyncio.to_thread(self._record_fetch, uidvalidity, uid, "vanished")
            return "vanished"
        if len(raw) > self.max_message_size:  # RFC822.SIZE was wrong: only a part was read
            log.warning(
                "external %s: UID %d is over the limit (listed as %d)", self.name, uid, size
            )
            await asyncio.to_thread(
                self._record_fetch,
                uidvalidity,
                uid,
                "refused",
                reason="message-too-large",
                size=len(raw),
            )
            return "refused"
        msg = InboundMessage(
            queue_id=new_queue_id(),
            mail_from=return_path(raw),
            rcpt_tos=(self.cfg.deliver_to.lower(),),
            raw=raw,
            received_at=utcnow(),
            client_ip="",  # the SMTP hop into the remote server is not ours to judge (SPF)
            client_helo=self.cfg.host,
            direction=Direction.FETCHED,
            tls=remote.tls,
        )
        token = queue_id_var.set(msg.queue_id)
        try:
            verdict, outcome = await check_and_act(
                msg, self.runner, self.acceptance, channel="external", metrics=self.metrics
            )
            if verdict.action is Action.REJECT:
                reason = verdict.deciding.reason if verdict.deciding else "refused"
                log.warning(
                    "external %s: UID %d refused (%s), left on the server", self.name, uid, reason
                )
                await asyncio.to_thread(
                    self._record_fetch, uidvalidity, uid, "refused", msg=msg, reason=reason
                )
                return "refused"
            if not isinstance(outcome, Accepted):
                reply = replies.for_outcome(outcome)
                log.warning("external %s: UID %d deferred: %s", self.name, uid, reply)
                return f"deferred: UID {uid}: {reply}"
            result = "duplicate" if outcome.duplicate else "accepted"
            await asyncio.to_thread(self._record_fetch, uidvalidity, uid, result, msg=msg)
            return result
        finally:
            queue_id_var.reset(token)

    # -- database ------------------------------------------------------------------------
    def _state(self, session: Session) -> ExternalState:
        state = session.get(ExternalState, self.name, with_for_update=True)
        if state is None:
            state = ExternalState(name=self.name, last_uid=0, idle=False, last_poll_new=0)
            session.add(state)
            session.flush()
        return state

    def _begin(self, uidvalidity: int) -> int:
        """Check UIDVALIDITY; return the highest UID already handled under it."""
        with self.sessions.begin() as session:
            state = self._state(session)
            if state.uidvalidity != uidvalidity:
                done = session.scalar(
                    select(func.max(ExternalFetch.uid)).where(
                        ExternalFetch.mailbox == self.name,
                        ExternalFetch.uidvalidity == uidvalidity,
                    )
                )
                if state.uidvalidity is not None:
                    log.warning(
                        "external %s: UIDVALIDITY changed %d -> %d: fetching every message "
                        "again (those already accepted are not delivered twice)",
                        self.name,
                        state.uidvalidity,
                        uidvalidity,
                    )
                    audit.record(
                        session,
                        actor=CLIENT,
                        action="external.uidvalidity-changed",
                        target=self.name,
                        details={
                            "old": state.uidvalidity,
                            "new": uidvalidity,
                            "last_uid": state.last_uid,
                        },
                    )
                state.uidvalidity = uidvalidity
                state.last_uid = int(done or 0)
                state.updated_at = utcnow()
            return state.last_uid

    def _record_fetch(
        self,
        uidvalidity: int,
        uid: int,
        outcome: str,
        *,
        msg: InboundMessage | None = None,
        reason: str = "",
        size: int = 0,
    ) -> None:
        """The UID is taken: its row and the new last UID commit together."""
        with self.sessions.begin() as session:
            state = self._state(session)
            known = session.scalar(
                select(ExternalFetch.id).where(
                    ExternalFetch.mailbox == self.name,
                    ExternalFetch.uidvalidity == uidvalidity,
                    ExternalFetch.uid == uid,
                )
            )
            if known is None:
                row = ExternalFetch(
                    mailbox=self.name,
                    uidvalidity=uidvalidity,
                    uid=uid,
                    outcome=outcome,
                    reason=reason[:64],
                    queue_id=msg.queue_id if msg else "",
                    message_id=msg.message_id[:998] if msg else "",
                    sha256=msg.sha256 if msg else "",
                    size=len(msg.raw) if msg else size,
                    fetched_at=utcnow(),
                )
                session.add(row)
                if outcome == "refused":
                    audit.record(
                        session,
                        actor=CLIENT,
                        action="external.refused",
                        target=self.name,
                        details={
                            "uidvalidity": uidvalidity,
                            "uid": uid,
                            "reason": reason,
                            "queue_id": row.queue_id,
                            "message_id": row.message_id,
                            "sha256": row.sha256,
                            "size": row.size,
                            "deliver_to": self.cfg.deliver_to,
                        },
                    )
            if state.uidvalidity == uidvalidity and uid > state.last_uid:
                state.last_uid = uid
            state.updated_at = utcnow()

    def _record_poll(self, result: PollResult, peer_ip: str) -> None:
        """The poll is a mailbox check; the state shows its time and what it found."""
        with self.sessions.begin() as session:
            state = self._state(session)
            session.add(
                MailboxCheck(
                    mailbox=check_address(self.cfg),
                    at=result.at,
                    source="poll",
                    session=f"poll:{self.name}:{uuid.uuid4().hex}",
                    remote_ip=peer_ip[:64],
                    client=CLIENT,
                    new_messages=result.fetched,
                    recorded_at=utcnow(),
                )
            )
            state.last_poll_at = result.at
            state.last_poll_new = result.fetched
            if result.deferred:
                state.last_error = result.deferred[:500]
                state.last_error_at = result.at
            else:
                state.last_error = ""
            if state.poll_requested_at is not None and state.poll_requested_at <= result.at:
                state.poll_requested_at = None
            state.updated_at = utcnow()

    def _set_mode(self, idle: bool) -> None:
        with self.sessions.begin() as session:
            state = self._state(session)
            state.idle = idle
            state.updated_at = utcnow()

    async def _record_error(self, text: str) -> None:
        def write() -> None:
            with self.sessions.begin() as session:
                state = self._state(session)
                state.last_error = text[:500]
                state.last_error_at = utcnow()
                state.updated_at = utcnow()

        try:
            await asyncio.to_thread(write)
        except Exception:  # boundary: the database may be what failed
            log.exception("external %s: could not record the error", self.name)


class ExternalMailboxes:
    """Every configured external mailbox's poller, and the watch for `external poll`
    requests (the CLI marks a row; the running server polls at once)."""

    def __init__(self, pollers: list[ExternalPoller], sessions: sessionmaker[Session]) -> None:
        self.pollers = {p.name: p for p in pollers}
        self.sessions = sessions
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        sessions: sessionmaker[Session],
        runner: PipelineRunner,
        acceptance: AcceptanceService,
        lookup: MailboxLookup,
        metrics: Metrics | None = None,
    ) -> ExternalMailboxes:
        """Build the pollers; a missing, empty or world-readable password file stops
        start-up (ConfigError naming the key)."""
        pollers: list[ExternalPoller] = []
        names: set[str] = set()
        for index, cfg in enumerate(settings.external):
            if cfg.name in names:
                raise ConfigError(f"mailsvc.toml: external[{index}]: name {cfg.name!r} repeated")
            names.add(cfg.name)
            password_file = settings.path(cfg.password_file)
            read_password(password_file, f"external[{index}].password_file")
            pollers.append(
                ExternalPoller(
                    cfg,
                    password_file=password_file,
                    ca_file=settings.path(cfg.ca_file) if cfg.ca_file else None,
                    sessions=sessions,
                    runner=runner,
                    acceptance=acceptance,
                    lookup=lookup,
                    max_message_size=settings.smtp.max_message_size,
                    metrics=metrics,
                    timeout=cfg.timeout_seconds,
                )
            )
        return cls(pollers, sessions)

    def start(self) -> None:
        for poller in self.pollers.values():
            poller.start()
        if self.pollers:
            self._watch = asyncio.create_task(self._watch_requests(), name="external:requests")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await asyncio.gather(*(p.stop() for p in self.pollers.values()))

    async def _watch_requests(self) -> None:
        while True:
            try:
                requested = await asyncio.to_thread(self._requested)
                for name, at in requested:
                    poller = self.pollers.get(name)
                    if poller is None or poller.wake.is_set():
                        continue
                    if poller.poll_started is None or poller.poll_started < at:
                        log.info("external %s: poll requested", name)
                        poller.wake.set()
            except Exception:  # boundary: keep watching
                log.exception("external: reading poll requests failed")
            await asyncio.sleep(REQUEST_CHECK_SECONDS)

    def _requested(self) -> list[tuple[str, datetime]]:
        with reading(self.sessions) as session:
            rows = session.execute(
                select(ExternalState.name, ExternalState.poll_requested_at).where(
                    ExternalState.poll_requested_at.is_not(None)
                )
            ).all()
        return [(name, at) for name, at in rows if at is not None]


def request_poll(session: Session, name: str) -> datetime:
    """Ask the running server to poll ``name`` now (the caller commits)."""
    at = utcnow()
    if session.get(ExternalState, name) is None:
        session.add(ExternalState(name=name, last_uid=0, idle=False, last_poll_new=0))
        session.flush()
    session.execute(
        update(ExternalState)
        .where(ExternalState.name == name)
        .values(poll_requested_at=at, updated_at=at)
    )
    return at
