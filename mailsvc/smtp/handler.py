"""The SMTP dialogue's decisions: who may send, to whom, and what the DATA reply is.

The handler asks; the pipeline runner decides; ``Acceptance`` commits and delivers.
Every hook is a boundary: an unexpected error becomes a 451 and a logged traceback,
never a dropped message or a crashed server.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
import time
import unicodedata
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession

from mailsvc.db.base import utcnow
from mailsvc.errors import is_storage_full
from mailsvc.message import Direction, InboundMessage
from mailsvc.metrics import Metrics
from mailsvc.originator import Mailbox
from mailsvc.outcome import Accepted, DeferReason, Deferred, Outcome, Refused
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.smtp import replies
from mailsvc.smtp.lookups import MailboxLookup, RecipientStatus
from mailsvc.verdict import Action, Verdict

log = logging.getLogger(__name__)

queue_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("queue_id", default="-")


def new_queue_id() -> str:
    return secrets.token_hex(6).upper()


class AcceptanceService(Protocol):
    """Commits accepted mail and delivers it (mailsvc.delivery.Acceptance)."""

    async def accept(self, msg: InboundMessage, verdict: Verdict) -> Accepted | Deferred: ...

    async def refuse(self, msg: InboundMessage, verdict: Verdict) -> None: ...


@dataclass(frozen=True)
class ListenerMode:
    name: str  # "smtp" | "submission" | "submissions"
    direction: Direction
    auth_required: bool


INBOUND = ListenerMode("smtp", Direction.INBOUND, auth_required=False)
SUBMISSION = ListenerMode("submission", Direction.SUBMISSION, auth_required=True)
SUBMISSIONS = ListenerMode("submissions", Direction.SUBMISSION, auth_required=True)


class RateLimiter:
    """Per-IP concurrent connections and messages per minute (per node, in memory)."""

    def __init__(self, max_connections: int, max_messages_per_minute: int) -> None:
        self.max_connections = max_connections
        self.max_messages = max_messages_per_minute
        self._connections: dict[str, int] = defaultdict(int)
        self._messages: dict[str, deque[float]] = defaultdict(deque)

    def open(self, ip: str) -> bool:
        if self._connections[ip] >= self.max_connections:
            return False
        self._connections[ip] += 1
        return True

    def close(self, ip: str) -> None:
        self._connections[ip] -= 1
        if self._connections[ip] <= 0:
            del self._connections[ip]

    def allow_message(self, ip: str) -> bool:
        now = time.monotonic()
        window = self._messages[ip]
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self.max_messages:
            return False
        window.append(now)
        return True


class RemoteRecipientLimiter:
    """Recipients at other servers per account per hour (per node, in memory): a stolen
    password cannot turn the agency's server into a spam source."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._sent: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, account: str) -> bool:
        now = time.monotonic()
        window = self._sent[account]
        while window and window[0] < now - 3600:
            window.popleft()
        if len(window) >= self.per_hour:
            return False
        window.append(now)
        return True


class SmtpHandler:
    """aiosmtpd handler hooks for one listener mode."""

    def __init__(
        self,
        mode: ListenerMode,
        lookup: MailboxLookup,
        runner: PipelineRunner,
        acceptance: AcceptanceService,
        *,
        max_recipients: int,
        rate: RateLimiter,
        inflight: InflightTracker,
        metrics: Metrics | None = None,
        remote: RemoteRecipientLimiter | None = None,
        dispatch: str = "",
    ) -> None:
        self.mode = mode
        # Submission: the dispatch address (drafts to issue) is accepted for logged-in users.
        self.dispatch = dispatch.lower()
        # Submission: recipients at other servers are accepted (and counted) when set.
        self.remote = remote
        self.lookup = lookup
        self.runner = runner
        self.acceptance = acceptance
        self.max_recipients = max_recipients
        self.rate = rate
        self.inflight = inflight
        self.metrics = metrics

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's answer to an exception in any other command (the database down at
        MAIL or RCPT): try later, never aiosmtpd's default ``500``."""
        if is_storage_full(error):
            log.error("SMTP command failed: storage full: %s", error)
            return replies.STORAGE_FULL
        log.error("SMTP command failed", exc_info=error)
        return replies.INTERNAL_ERROR

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        ip = _peer_ip(session)
        if self.mode.auth_required and not session.authenticated:
            return replies.AUTH_REQUIRED
        if not self.rate.allow_message(ip):
            log.warning("rate limit: %s exceeded %d messages/minute", ip, self.rate.max_messages)
            return replies.RATE_LIMITED
        if address == "<>":
            address = ""  # the null sender: reports (MDN, DSN), checked at DATA
        if session.authenticated:
            user = _login(session)
            if address and not await self.lookup.may_send_as(user, address):
                return replies.SENDER_NOT_OWNED.format(address=address)
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        if "@" not in address:
            return replies.BAD_ADDRESS
        if (
            self.dispatch
            and address.lower() == self.dispatch
            and session.authenticated
            and self.mode.direction is Direction.SUBMISSION
        ):
            envelope.rcpt_tos.append(address.lower())
            return replies.RECIPIENT_OK
        status = await self.lookup.recipient_status(address)
        if status is RecipientStatus.REMOTE:
            if not session.authenticated:
                return replies.RELAY_DENIED.format(address=address)
            if self.mode.direction is not Direction.SUBMISSION or self.remote is None:
                return replies.RELAY_NOT_CONFIGURED.format(address=address)
            user = _login(session)
            if not self.remote.allow(user):
                log.warning(
                    "remote recipient limit: %s exceeded %d per hour", user, self.remote.per_hour
                )
                return replies.REMOTE_RATE_LIMITED
        if status is RecipientStatus.UNKNOWN:
            return replies.UNKNOWN_USER.format(address=address)
        if status is RecipientStatus.DISABLED:
            return replies.MAILBOX_DISABLED.format(address=address)
        envelope.rcpt_tos.append(address.lower())
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        queue_id = new_queue_id()
        token = queue_id_var.set(queue_id)
        self.inflight.enter()
        try:
            return await self._data(queue_id, session, envelope)
        except Exception as exc:  # boundary: never crash the server, never accept unchecked
            if is_storage_full(exc):
                log.error("DATA refused for %s: storage full: %s", queue_id, exc)
                return replies.STORAGE_FULL
            log.exception("DATA failed for %s", queue_id)
            return replies.INTERNAL_ERROR
        finally:
            self.inflight.leave()
            queue_id_var.reset(token)

    async def _data(self, queue_id: str, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        user = _login(session) if session.authenticated else None
        msg = InboundMessage(
            queue_id=queue_id,
            mail_from=(envelope.mail_from or "").lower() if envelope.mail_from != "<>" else "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            received_at=utcnow(),
            client_ip=_peer_ip(session),
            client_helo=session.host_name or "",
            authenticated_as=user,
            direction=self.mode.direction,
            tls=session.ssl is not None,
            mail_from_as_sent=(envelope.mail_from or "") if envelope.mail_from != "<>" else "",
        )
        if user is not None:
            refusal = await self._submission_refusal(user, msg)
            if refusal:
                log.info("%s refused at submission: %s", queue_id, refusal)
                return refusal
        _verdict, outcome = await check_and_act(
            msg, self.runner, self.acceptance, channel=self.mode.name, metrics=self.metrics
        )
        return replies.for_outcome(outcome)

    async def _submission_refusal(self, user: str, msg: InboundMessage) -> str:
        """An official's own mail must show who sent it: one From: naming one mailbox the
        login owns, no other address dressed up as the display name, and the null
        sender only for reports. Parsed off the event loop (cached on the message)."""
        originator, report = await asyncio.to_thread(lambda: (msg.originator, _is_report(msg)))
        if originator.problem is not None:
            return replies.for_reason(originator.problem.reason)
        if not await self.lookup.may_send_as(user, msg.from_address):
            return replies.FROM_NOT_OWNED
        # Sender: is shown too ("X on behalf of Y"): the login's own mailbox or none.
        sender = originator.sender[0] if originator.sender else None
        if sender is not None and not await self.lookup.may_send_as(
            user, sender.addr_spec.lower()
        ):
            return replies.SENDER_FIELD_NOT_OWNED
        # Resent-From:/Resent-Sender: (a message sent on again) are shown as who sent it
        # too: every one the login's own, like From: and Sender:.
        if originator.resent_problem is not None:
            return replies.for_reason(originator.resent_problem.reason)
        resent = [("Resent-From", m) for m in originator.resent_from] + [
            ("Resent-Sender", m) for m in originator.resent_sender
        ]
        for field, shown in resent:
            if not await self.lookup.may_send_as(user, shown.addr_spec.lower()):
                return replies.RESENT_NOT_OWNED.format(field=field)
        own = {user, msg.from_address} | ({sender.addr_spec.lower()} if sender else set())
        own |= {shown.addr_spec.lower() for _, shown in resent}
        named: list[tuple[Mailbox | None, str]] = [
            (originator.from_[0], replies.FROM_NAME_NOT_OWNED),
            (sender, replies.SENDER_NAME_NOT_OWNED),
            *((m, replies.RESENT_NAME_NOT_OWNED.format(field=f)) for f, m in resent),
        ]
        for mailbox, refusal in named:
            if mailbox is None:
                continue
            # Display name and comments ("a@b (Name)" shows Name); NFKC: a full-width ＠
            # reads as @ to the recipient too.
            name = unicodedata.normalize("NFKC", mailbox.shown_name)
            if {a.lower() for a in _ADDRESS_IN_NAME.findall(name)} - own:
                return refusal
        if not msg.mail_from and not report:
            return replies.NULL_SENDER_NOT_REPORT
        return ""


async def check_and_act(
    msg: InboundMessage,
    runner: PipelineRunner,
    acceptance: AcceptanceService,
    *,
    channel: str,
    metrics: Metrics | None = None,
) -> tuple[Verdict, Outcome]:
    """Run the pipeline, then accept (commit + deliver) or refuse: the one path every
    message takes, whether it came over SMTP or was fetched from an external mailbox.
    Returns the verdict and the typed outcome (``Accepted`` only once the mail is safe);
    ``replies.for_outcome`` words it for SMTP."""
    started = time.monotonic()
    verdict = await runner.run(msg)
    if metrics is not None:
        metrics.messages.labels(channel, verdict.action.value).inc()
        reason = verdict.deciding.reason if verdict.deciding is not None else "none"
        metrics.verdicts.labels(msg.direction.value, verdict.action.value, reason).inc()
        for finding in verdict.findings:
            metrics.findings.labels(finding.stage, finding.status.value).inc()
    try:
        if verdict.action in (Action.REJECT, Action.TEMPFAIL):
            await acceptance.refuse(msg, verdict)
            refused: Outcome = (
                Refused(verdict)
                if verdict.action is Action.REJECT
                else Deferred(
                    DeferReason.CHECKS, verdict.deciding.reason if verdict.deciding else ""
                )
            )
            log.info("%s refused: %s", msg.queue_id, replies.for_outcome(refused))
            return verdict, refused
        return verdict, await acceptance.accept(msg, verdict)
    finally:
        if metrics is not None:
            metrics.data_seconds.labels(channel).observe(time.monotonic() - started)


class InflightTracker:
    """Counts messages between end of DATA and the reply, so shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    async def wait_idle(self) -> None:
        await self._idle.wait()


def _peer_ip(session: SmtpSession) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


def _login(session: SmtpSession) -> str:
    """The logged-in address: ``auth_data`` (our AUTH returns a ``LoginPassword``), not the
    deprecated ``login_data``, whose every read logs a warning from aiosmtpd."""
    data = getattr(session.auth_data, "login", None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace").lower()
    return str(data or "").lower()


# Something that reads as an address inside a display name ("boss@agency" <me@...>).
_ADDRESS_IN_NAME = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


def _is_report(msg: InboundMessage) -> bool:
    """A delivery or read report (RFC 6522 multipart/report): what the null sender is for."""
    return msg.headers.get_content_type() == "multipart/report"
