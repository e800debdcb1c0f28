"""Alerts about mailbox checks (domain §9), each raised once.

- ``window-missed``: a check window of a working day ended without a check;
- ``priority-late``: a priority message was not followed by a check in time;
- ``priority-arrived``: a priority message arrived ("tin nhắn" to the clerk).

Raising an alert first inserts a ``CheckAlert`` row whose ``key`` is unique (the same
window, or the same message, always gives the same key): whoever commits the row sends,
everyone else sees it raised already. So an alert goes out once, however often the job
runs and on however many nodes. Then, side by side, each independent of the others:
mail (window-missed and priority-late to the mailboxes with a role in
``policy.alert_roles``; priority-arrived to the receiving mailbox), the ``[alerts]``
webhook (POST, JSON) and command (one JSON line on standard input, argv split like a
shell, no shell). A failing channel is logged and recorded in the row's details, never retried.

``compliance_alerts_job`` evaluates the last 24 hours as of ``ctx.now`` and raises what
is due; ``PriorityFollower`` (a delivery Follower) sends the arrival notice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiohttp
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.accounts import ADMIN_ROLE
from mailsvc.checks.compliance import (
    DayCompliance,
    PriorityResult,
    WindowResult,
    evaluate,
    is_priority_message,
    tracked_mailboxes,
)
from mailsvc.checks.models import CheckAlert
from mailsvc.checks.policy import CheckingPolicy, load_checking_policy
from mailsvc.config import AlertsSection
from mailsvc.db.base import utcnow
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.db.session import reading
from mailsvc.jobs.context import JobContext
from mailsvc.message import InboundMessage
from mailsvc.outbound.mailer import Mailer
from mailsvc.outcome import Accepted
from mailsvc.time import VIETNAM, iso_local, vn_date, vn_datetime
from mailsvc.verdict import Action, Verdict

log = logging.getLogger(__name__)

# How far back the job looks: a window that ended, or a message that arrived, longer ago
# than this raises no alert (it still shows in `mailsvc checks report`).
ALERT_LOOKBACK = timedelta(hours=24)
KEY_LENGTH = 255  # CheckAlert.key


def alert_key(kind: str, *parts: str) -> str:
    """``kind:part:part``; hashed when it would not fit the column."""
    key = ":".join((kind, *parts))
    if len(key) <= KEY_LENGTH:
        return key
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class Alert:
    key: str
    kind: str  # window-missed | priority-late | priority-arrived
    mailbox: str
    raised_at: datetime
    subject: str
    body: str  # the mail's text
    text: str  # one line for an SMS gateway
    recipients: tuple[str, ...]  # who gets it by mail
    details: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """What the webhook and the command receive (documented in docs/checks-compliance.md)."""
        return {
            "kind": self.kind,
            "key": self.key,
            "mailbox": self.mailbox,
            "raised_at": iso_local(self.raised_at),
            "text": self.text,
            "recipients": list(self.recipients),
            "details": self.details,
        }


class AlertNotifier:
    """Composes alerts from templates/alerts/ and raises each one once."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer | None,
        settings: AlertsSection,
        templates: Path,
        *,
        hostname: str,
        domain: str,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(str(templates)),
            undefined=StrictUndefined,
            autoescape=False,  # plain-text mail only
            keep_trailing_newline=True,
        )
        self.hostname = hostname
        self.sender = f"Hệ thống thư công vụ <postmaster@{domain}>"

    # -- composing -------------------------------------------------------------------------
    def window_missed(
        self,
        day: DayCompliance,
        window: WindowResult,
        *,
        recipients: Sequence[str],
        now: datetime,
    ) -> Alert:
        key = alert_key("window-missed", day.mailbox, day.day.isoformat(), window.label)
        values = {
            "key": key,
            "mailbox": day.mailbox,
            "date": vn_date(day.day),
            "window_name": window.name,
            "window": window.label,
            "window_start": vn_datetime(window.start),
            "window_end": vn_datetime(window.end),
            "as_of": vn_datetime(now),
            "checks": len(day.checks),
            "min_checks": day.min_checks,
            "last_check": vn_datetime(day.checks[-1]) if day.checks else "",
            "hostname": self.hostname,
        }
        return Alert(
            key=key,
            kind="window-missed",
            mailbox=day.mailbox,
            raised_at=now,
            subject=(
                f"[Cảnh báo] Hộp thư {day.mailbox} không được kiểm tra trong khung giờ "
                f"{window.label} ngày {vn_date(day.day)}"
            ),
            body=self.env.get_template("window_missed.txt.j2").render(values),
            text=(
                f"Cảnh báo: hộp thư {day.mailbox} không được kiểm tra trong khung giờ "
                f"{window.name.lower()} ({window.label}) ngày {vn_date(day.day)}."
            ),
            recipients=tuple(recipients),
            details={
                "date": day.day.isoformat(),
                "window": window.label,
                "window_name": window.name,
                "window_end": iso_local(window.end),
                "checks": len(day.checks),
            },
        )

    def priority_late(
        self,
        message: PriorityResult,
        *,
        max_delay_minutes: int,
        recipients: Sequence[str],
        now: datetime,
    ) -> Alert:
        key = alert_key("priority-late", str(message.record_id))
        values = {
            "key": key,
            "mailbox": message.mailbox,
            "sender": message.sender,
            "arrived_at": vn_datetime(message.arrived_at),
            "deadline": vn_datetime(message.deadline),
            "checked_at": vn_datetime(message.checked_at),
            "max_delay": max_delay_minutes,
            "message_id": message.message_id,
            "queue_id": message.queue_id,
            "hostname": self.hostname,
        }
        return Alert(
            key=key,
            kind="priority-late",
            mailbox=message.mailbox,
            raised_at=now,
            subject=(
                f"[Cảnh báo] Thư ưu tiên của {message.sender} đến hộp thư {message.mailbox} "
                f"không được kiểm tra trong vòng {max_delay_minutes} phút"
            ),
            body=self.env.get_template("priority_late.txt.j2").render(values),
            text=(
                f"Cảnh báo: thư ưu tiên của {message.sender} đến hộp thư {message.mailbox} "
                f"lúc {vn_datetime(message.arrived_at)} không được kiểm tra trong vòng "
                f"{max_delay_minutes} phút."
            ),
            recipients=tuple(recipients),
            details={
                "sender": message.sender,
                "message_id": message.message_id,
                "queue_id": message.queue_id,
                "arrived_at": iso_local(message.arrived_at),
                "deadline": iso_local(message.deadline),
                "checked_at": iso_local(message.checked_at) if message.checked_at else None,
            },
        )

    def priority_arrived(
        self,
        record: MessageRecord,
        *,
        subject: str,
        max_delay_minutes: int,
        now: datetime,
    ) -> Alert:
        key = alert_key("priority-arrived", str(record.id))
        arrived = record.received_at
        deadline = arrived + timedelta(minutes=max_delay_minutes)
        values = {
            "key": key,
            "mailbox": record.recipient,
            "sender": record.mail_from,
            "arrived_at": vn_datetime(arrived),
            "deadline": vn_datetime(deadline),
            "max_delay": max_delay_minutes,
            "subject": subject,
            "hostname": self.hostname,
        }
        return Alert(
            key=key,
            kind="priority-arrived",
            mailbox=record.recipient,
            raised_at=now,
            subject=f"[Tin nhắn] Thư ưu tiên của {record.mail_from} vừa đến hộp thư",
            body=self.env.get_template("priority_arrived.txt.j2").render(values),
            # No subject here: the webhook may leave the network (an SMS gateway).
            text=(
                f"Tin nhắn: hộp thư {record.recipient} vừa nhận thư ưu tiên của "
                f"{record.mail_from} lúc {vn_datetime(arrived)}; đề nghị kiểm tra trước "
                f"{vn_datetime(deadline)}."
            ),
            recipients=(record.recipient,),
            details={
                "sender": record.mail_from,
                "message_id": record.message_id,
                "queue_id": record.queue_id,
                "arrived_at": iso_local(arrived),
                "deadline": iso_local(deadline),
            },
        )

    # -- raising ---------------------------------------------------------------------------
    async def notify(self, alert: Alert) -> bool:
        """Raise ``alert`` unless its key was raised before; True when raised now."""
        if not await asyncio.to_thread(self._claim, alert):
            log.debug("alert %s already raised", alert.key)
            return False
        log.info("alert %s raised (%d mail recipients)", alert.key, len(alert.recipients))
        mail, webhook, command = await asyncio.gather(
            self._mail(alert), self._post_webhook(alert), self._run_command(alert)
        )
        await asyncio.to_thread(
            self._record_outcome, alert.key, {"mail": mail, "webhook": webhook, "command": command}
        )
        return True

    def _claim(self, alert: Alert) -> bool:
        try:
            with self.sessions.begin() as session:
                session.add(
                    CheckAlert(
                        key=alert.key,
                        kind=alert.kind,
                        mailbox=alert.mailbox,
                        raised_at=alert.raised_at,
                        details=alert.payload(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def _record_outcome(self, key: str, outcome: dict[str, Any]) -> None:
        with self.sessions.begin() as session:
            row = session.scalars(select(CheckAlert).where(CheckAlert.key == key)).one()
            row.details = {**row.details, "delivery": outcome}

    async def _mail(self, alert: Alert) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.mailer is None:
            log.warning("alert %s: no mailer, mail to %s skipped", alert.key, alert.recipients)
            return {r: "skipped" for r in alert.recipients}
        for recipient in alert.recipients:
            message = EmailMessage()
            message["From"] = self.sender
            message["To"] = recipient
            message["Subject"] = alert.subject
            message["Date"] = format_datetime(datetime.now(VIETNAM))
            message["Message-ID"] = make_msgid(domain=self.hostname)
            message["Auto-Submitted"] = "auto-generated"
            message["Importance"] = "high"
            message["X-Mailsvc-Alert"] = f"{alert.kind}; key={alert.key}"
            message.set_content(alert.body)
            try:
                await self.mailer.send(message, recipient, kind=f"alert-{alert.kind}")
                out[recipient] = "sent"
            except Exception as exc:  # boundary: one recipient's failure stops no other
                log.exception("alert %s: mail to %s failed", alert.key, recipient)
                out[recipient] = f"error: {type(exc).__name__}"
        return out

    async def _post_webhook(self, alert: Alert) -> str:
        url = self.settings.webhook_url
        if not url:
            return "not configured"
        budget = self.settings.timeout_seconds
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=budget), trust_env=False
                ) as client,
                client.post(
                    url,
                    data=encode_payload(alert.payload()),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    raise_for_status=True,
                ) as response,
            ):
                status = response.status
        except aiohttp.ClientResponseError as exc:
            log.warning("alert %s: webhook %s answered HTTP %s", alert.key, url, exc.status)
            return f"error: HTTP {exc.status}"
        except (aiohttp.ClientConnectionError, OSError) as exc:
            log.warning("alert %s: webhook %s unreachable: %s", alert.key, url, exc)
            return "error: unreachable"
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert %s: webhook %s failed: %s", alert.key, url, exc or type(exc))
            return f"error: {type(exc).__name__}"
        return f"ok: HTTP {status}"

    async def _run_command(self, alert: Alert) -> str:
        if not self.settings.command:
            return "not configured"
        argv = shlex.split(self.settings.command)
        data = encode_payload(alert.payload()) + b"\n"  # one JSON line
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("alert %s: command %s cannot start: %s", alert.key, argv[0], exc)
            return f"error: {type(exc).__name__}"
        try:
            _, err = await asyncio.wait_for(
                process.communicate(data), self.settings.timeout_seconds
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning(
                "alert %s: command %s killed after %.1f s",
                alert.key,
                argv[0],
                self.settings.timeout_seconds,
            )
            return "error: timeout"
        if process.returncode != 0:
            log.warning(
                "alert %s: command %s exited %d: %s",
                alert.key,
                argv[0],
                process.returncode,
                err.decode("utf-8", "replace").strip()[:300],
            )
            return f"error: exit {process.returncode}"
        return "ok"


def encode_payload(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON, diacritics as they are: the webhook's body and the command's input."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


# -- what is due ---------------------------------------------------------------------------


def alert_recipients(
    session: Session, policy: CheckingPolicy, mailboxes: Iterable[str]
) -> dict[str, list[str]]:
    """For each of ``mailboxes``, who is told about it: the enabled mailboxes with a role in
    ``policy.alert_roles`` of the same agency (of the same mail domain when it belongs to
    no agency), and administrators who belong to no agency (the server's operators). On a
    server hosting several agencies, one agency's leaders hear nothing of another's."""
    wanted = sorted(set(mailboxes))
    agency_of = dict(
        session.execute(
            select(Mailbox.address, Mailbox.agency_id).where(Mailbox.address.in_(wanted))
        ).all()
    )
    candidates = session.execute(
        select(Mailbox.address, Mailbox.agency_id, Mailbox.role)
        .where(
            Mailbox.role.in_(policy.alert_roles),
            Mailbox.enabled.is_(True),
            Mailbox.removed.is_(False),
        )
        .order_by(Mailbox.address)
    ).all()

    def told(mailbox: str) -> list[str]:
        agency = agency_of.get(mailbox)
        domain = mailbox.rpartition("@")[2]
        return [
            address
            for address, their_agency, role in candidates
            if (agency is not None and their_agency == agency)
            or (agency is None and their_agency is None and address.rpartition("@")[2] == domain)
            or (role == ADMIN_ROLE and their_agency is None)
        ]

    return {mailbox: told(mailbox) for mailbox in wanted}


def due_alerts(
    session: Session, policy: CheckingPolicy, notifier: AlertNotifier, now: datetime
) -> list[Alert]:
    """Windows missed and priority messages late in the last ``ALERT_LOOKBACK`` as of
    ``now``, not raised before. A window that started before its mailbox was created
    raises nothing."""
    since = now - ALERT_LOOKBACK
    zone = policy.zone
    results = evaluate(
        session, policy, since.astimezone(zone).date(), now.astimezone(zone).date(), now=now
    )
    created = dict(
        session.execute(
            select(Mailbox.address, Mailbox.created_at).where(
                Mailbox.address.in_({r.mailbox for r in results})
            )
        ).all()
    )
    told = alert_recipients(session, policy, (r.mailbox for r in results))
    alerts: list[Alert] = []
    for day in results:
        recipients = told[day.mailbox]
        born = created.get(day.mailbox)
        for window in day.windows:
            if window.status != "missed" or window.end < since:
                continue
            if born is not None and window.start < born:
                continue
            alerts.append(notifier.window_missed(day, window, recipients=recipients, now=now))
        for message in day.priority:
            if message.status == "late" and message.arrived_at >= since:
                alerts.append(
                    notifier.priority_late(
                        message,
                        max_delay_minutes=policy.priority.max_delay_minutes,
                        recipients=recipients,
                        now=now,
                    )
                )
    if not alerts:
        return []
    raised = set(
        session.scalars(select(CheckAlert.key).where(CheckAlert.key.in_([a.key for a in alerts])))
    )
    return [a for a in alerts if a.key not in raised]


def _notifier(ctx: JobContext) -> tuple[CheckingPolicy, AlertNotifier]:
    from mailsvc.app import policies_dir, templates_dir  # mailsvc.app imports this module

    s = ctx.settings
    policy = load_checking_policy(policies_dir(s) / "checking.yaml")
    notifier = AlertNotifier(
        ctx.sessions,
        ctx.mailer,
        s.alerts,
        templates_dir(s) / "alerts",
        hostname=s.server.hostname,
        domain=s.server.domain,
    )
    return policy, notifier


async def compliance_alerts_job(ctx: JobContext) -> str:
    """Raise the alerts due as of ``ctx.now`` (policies/checking.yaml is read each run)."""
    policy, notifier = await asyncio.to_thread(_notifier, ctx)

    def find() -> list[Alert]:
        with ctx.sessions() as session:
            return due_alerts(session, policy, notifier, ctx.now)

    alerts = await asyncio.to_thread(find)
    raised = [a for a in alerts if await notifier.notify(a)]
    kinds = {k: sum(1 for a in raised if a.kind == k) for k in ("window-missed", "priority-late")}
    return (
        f"compliance alerts: {len(raised)} raised "
        f"({kinds['window-missed']} window-missed, {kinds['priority-late']} priority-late)"
    )


# -- arrival notice ------------------------------------------------------------------------


class PriorityFollower:
    """After delivery: a priority message to a tracked mailbox notifies that mailbox's
    clerk at once (mail into the mailbox, plus the webhook and command)."""

    def __init__(
        self, sessions: sessionmaker[Session], notifier: AlertNotifier, policy: CheckingPolicy
    ) -> None:
        self.sessions = sessions
        self.notifier = notifier
        self.policy = policy

    def _tracked(self) -> set[str]:
        with reading(self.sessions) as session:
            return set(tracked_mailboxes(session, self.policy))

    async def after_accept(self, msg: InboundMessage, verdict: Verdict, accepted: Accepted) -> None:
        if verdict.action is not Action.DELIVER:
            return
        hits = [
            r for r in accepted.records if is_priority_message(self.policy, r.mail_from, verdict)
        ]
        if not hits:
            return
        tracked = await asyncio.to_thread(self._tracked)
        subject = str(msg.parsed.get("Subject", ""))
        for record in hits:
            if record.recipient.lower() not in tracked:
                continue
            await self.notifier.notify(
                self.notifier.priority_arrived(
                    record,
                    subject=subject,
                    max_delay_minutes=self.policy.priority.max_delay_minutes,
                    now=utcnow(),
                )
            )

    async def after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None
