"""Notices to senders and alerts to administrators, done after the SMTP reply.

- ``RefusalRecorder`` (a delivery Recorder) keeps what an auditor needs of a refused
  message inside the refusal transaction: a virus detection row (quarantine), or, for
  classified content, an audit-log entry with only hash, sender, time and rule.
- ``NoticeFollower`` (a delivery Follower) sends, after the reply: a receipt (đã tiếp
  nhận, with số đến) for a registered document; a refusal notice (từ chối tiếp nhận) for
  signature and classified-content refusals; admin alerts for viruses (and outbreaks)
  and classified content. Never a notice to a null, unauthenticated/forged or
  auto-submitted sender, never for viruses or spam (no backscatter); every notice
  carries ``Auto-Submitted: auto-replied`` so two instances cannot loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.delivery import Annotations
from mailsvc.message import Direction, InboundMessage
from mailsvc.outbound.mailer import Mailer
from mailsvc.quarantine.service import count_detections, record_detection
from mailsvc.time import VIETNAM, iso_local
from mailsvc.verdict import Action, Status, Verdict

log = logging.getLogger(__name__)

# Status codes of the national document exchange's status messages.
STATUS_LABELS = {
    "01": "Đã đến",
    "02": "Từ chối tiếp nhận",
    "03": "Đã tiếp nhận",
    "04": "Đã phân công",
    "05": "Đang xử lý",
    "06": "Đã hoàn thành",
    "13": "Yêu cầu thu hồi",
    "15": "Đã thu hồi",
    "16": "Từ chối thu hồi",
}
NOTICE_REASONS = {
    "signature-invalid": "Chữ ký số trên văn bản không hợp lệ.",
    "unsigned": "Văn bản không có chữ ký số theo quy định.",
    "signer-mismatch": "Cơ quan ký số không khớp với cơ quan gửi.",
    "classified-content": (
        "Văn bản có dấu hiệu mang độ mật; văn bản mật không được gửi qua hệ thống thư "
        "điện tử công vụ."
    ),
}
OUTBREAK_WINDOW = timedelta(minutes=10)
OUTBREAK_THRESHOLD = 3
_REGISTER_NUMBER = re.compile(r"^X-Mailsvc-Register-Number:\s*(\d+)", re.MULTILINE | re.IGNORECASE)


def _environment(templates: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        keep_trailing_newline=True,
    )


class RefusalRecorder:
    """Quarantine record for viruses; audit entry for classified content. No content kept."""

    def prepare(self, msg: InboundMessage, verdict: Verdict) -> None:
        return None

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        return Annotations()

    def on_refuse(self, session: Session, msg: InboundMessage, verdict: Verdict) -> None:
        for finding in verdict.findings:
            if finding.status is not Status.FAIL:
                continue
            if finding.reason == "virus-found":
                record_detection(
                    session,
                    queue_id=msg.queue_id,
                    sha256=msg.sha256,
                    mail_from=msg.mail_from,
                    client_ip=msg.client_ip,
                    recipients=msg.rcpt_tos,
                    signature=str(finding.evidence.get("signature", "")),
                    size=len(msg.raw),
                )
            elif finding.reason == "classified-content":
                audit.record(
                    session,
                    actor="mailsvc",
                    action="classified-refused",
                    target=msg.sha256,
                    details={
                        "queue_id": msg.queue_id,
                        "sender": msg.mail_from,
                        "client_ip": msg.client_ip,
                        "recipients": list(msg.rcpt_tos),
                        "rule": finding.evidence.get("rule", ""),
                        "level": finding.evidence.get("level", ""),
                        "where": finding.evidence.get("where", ""),
                        "received_at": msg.received_at.isoformat(),
                    },
                )


class NoticeFollower:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer,
        templates: Path,
        *,
        hostname: str,
        domain: str,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.env = _environment(templates)
        self.hostname = hostname
        self.postmaster = f"postmaster@{domain}"

    @property
    def sent(self) -> list[tuple[str, str]]:
        """(kind, recipient) of everything sent, for operators and tests."""
        return self.mailer.sent

    # -- Follower protocol ----------------------------------------------------------------
    async def after_accept(
        self, msg: InboundMessage, verdict: Verdict, records: Sequence[MessageRecord]
    ) -> None:
        numbers = {m.group(1) for r in records for m in [_REGISTER_NUMBER.search(r.headers)] if m}
        if not numbers or not self._may_notify(msg, verdict):
            return
        await self._send_notice(
            msg,
            "03",
            "THÔNG BÁO ĐÃ TIẾP NHẬN VĂN BẢN",
            incoming_number=", ".join(sorted(numbers)),
            reason="",
        )

    async def after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        deciding = verdict.deciding
        if deciding is None:
            return
        if deciding.reason == "virus-found":
            await self._alert_virus(msg, str(deciding.evidence.get("signature", "")))
            return  # never a notice for a virus: the sender address is probably forged
        if deciding.reason == "classified-content":
            await self._alert_classified(msg, deciding.evidence)
        if deciding.reason in NOTICE_REASONS and self._may_notify(msg, verdict):
            await self._send_notice(
                msg,
                "02",
                "THÔNG BÁO TỪ CHỐI TIẾP NHẬN VĂN BẢN",
                incoming_number="",
                reason=NOTICE_REASONS[deciding.reason],
            )

    # -- rules -----------------------------------------------------------------------------
    def _may_notify(self, msg: InboundMessage, verdict: Verdict) -> bool:
        """No backscatter: a real, authenticated, human sender only."""
        if not msg.mail_from or msg.mail_from.lower() == self.postmaster:
            return False
        auto = str(msg.headers.get("Auto-Submitted", "no")).strip().lower()
        precedence = str(msg.headers.get("Precedence", "")).strip().lower()
        if auto != "no" or precedence in ("bulk", "junk", "list"):
            return False
        if msg.direction is Direction.SUBMISSION and msg.authenticated_as:
            return True
        return (
            any(
                f.stage == "authentication"
                and f.status is Status.PASS
                and f.reason in ("dkim-pass", "dmarc-pass", "spf-pass")
                for f in verdict.findings
            )
            and verdict.action is not Action.QUARANTINE
        )

    # -- building and sending --------------------------------------------------------------
    async def _send_notice(
        self, msg: InboundMessage, code: str, heading: str, *, incoming_number: str, reason: str
    ) -> None:
        values = {
            "sender": msg.mail_from,
            "heading": heading,
            "subject": str(msg.headers.get("Subject", "")),
            "message_id": msg.message_id,
            "number_notation": "",
            "time": iso_local(msg.received_at),
            "status_code": code,
            "status_label": STATUS_LABELS[code],
            "incoming_number": incoming_number,
            "reason": reason,
            "hostname": self.hostname,
        }
        notice = EmailMessage()
        notice["From"] = f"Hệ thống thư công vụ <{self.postmaster}>"
        notice["To"] = msg.mail_from
        notice["Subject"] = f"{heading.capitalize()}: {values['subject']}"[:200]
        notice["Date"] = format_datetime(datetime.now(VIETNAM))
        notice["Message-ID"] = make_msgid(domain=self.hostname)
        notice["Auto-Submitted"] = "auto-replied"
        if msg.message_id:
            notice["In-Reply-To"] = msg.message_id
            notice["References"] = msg.message_id
        notice.set_content(self.env.get_template("notice.txt.j2").render(values))
        notice.add_alternative(
            self.env.get_template("notice.html.j2").render(values), subtype="html"
        )
        status = {
            "message_id": msg.message_id,
            "number_notation": values["number_notation"],
            "status_code": code,
            "status": STATUS_LABELS[code],
            "incoming_number": incoming_number or None,
            "time": values["time"],
            "reason": reason or None,
        }
        notice.make_mixed()
        notice.add_attachment(
            json.dumps(status, ensure_ascii=False, indent=2).encode("utf-8"),
            maintype="application",
            subtype="json",
            filename="status.json",
        )
        await self._send(notice, msg.mail_from, kind=f"notice-{code}")

    async def _alert_virus(self, msg: InboundMessage, signature: str) -> None:
        count = await asyncio.to_thread(self._recent_detections, msg.client_ip)
        values = {
            "time": iso_local(msg.received_at),
            "queue_id": msg.queue_id,
            "sender": msg.mail_from,
            "client_ip": msg.client_ip,
            "recipients": msg.rcpt_tos,
            "signature": signature,
            "sha256": msg.sha256,
            "outbreak": count >= OUTBREAK_THRESHOLD,
            "outbreak_count": count,
            "outbreak_window": f"{int(OUTBREAK_WINDOW.total_seconds() // 60)} phút",
        }
        subject = (
            "[CẢNH BÁO DỊCH MÃ ĐỘC]" if values["outbreak"] else "[Cảnh báo mã độc]"
        ) + f" {signature} từ {msg.client_ip}"
        await self._alert(
            subject,
            self.env.get_template("alert_virus.txt.j2").render(values),
            kind="outbreak" if values["outbreak"] else "virus",
        )

    async def _alert_classified(self, msg: InboundMessage, evidence: Any) -> None:
        values = {
            "time": iso_local(msg.received_at),
            "queue_id": msg.queue_id,
            "sender": msg.mail_from,
            "client_ip": msg.client_ip,
            "level": evidence.get("title", evidence.get("level", "")),
            "rule": evidence.get("rule", ""),
            "where": evidence.get("where", ""),
            "sha256": msg.sha256,
        }
        await self._alert(
            "[Cảnh báo] Từ chối thư có dấu hiệu chứa nội dung mật",
            self.env.get_template("alert_classified.txt.j2").render(values),
            kind="classified",
        )

    def _recent_detections(self, client_ip: str) -> int:
        from mailsvc.db.base import utcnow

        with self.sessions() as session:
            return count_detections(session, since=utcnow() - OUTBREAK_WINDOW, client_ip=client_ip)

    def _admins(self) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Mailbox.address).where(
                        Mailbox.role == "admin",
                        Mailbox.enabled.is_(True),
                        Mailbox.removed.is_(False),
                    )
                ).all()
            )

    async def _alert(self, subject: str, body: str, *, kind: str) -> None:
        for admin in await asyncio.to_thread(self._admins):
            alert = EmailMessage()
            alert["From"] = f"Hệ thống thư công vụ <{self.postmaster}>"
            alert["To"] = admin
            alert["Subject"] = subject
            alert["Date"] = format_datetime(datetime.now(VIETNAM))
            alert["Message-ID"] = make_msgid(domain=self.hostname)
            alert["Auto-Submitted"] = "auto-generated"
            alert["Importance"] = "high"
            alert.set_content(body)
            await self._send(alert, admin, kind=f"alert-{kind}")

    async def _send(self, message: EmailMessage, recipient: str, *, kind: str) -> None:
        await self.mailer.send(message, recipient, kind=kind)
