"""Notices to senders and alerts to administrators, done after the SMTP reply.

- ``RefusalRecorder`` (a delivery Recorder) keeps what an auditor needs of a refused
  message inside the refusal transaction: a virus detection row (quarantine), or, for
  classified content, an audit-log entry with only hash, sender, time and rule.
- ``NoticeFollower`` (a delivery Follower) sends, after the reply: a receipt (đã tiếp
  nhận, with số đến) for a registered document; a refusal notice (từ chối tiếp nhận) for
  signature and classified-content refusals; admin alerts for viruses (and outbreaks)
  and classified content. Never a notice to a null, unauthenticated/forged or
  auto-submitted sender, never for viruses or spam (no backscatter); every notice
  carries ``Auto-Submitted: auto-replied`` so two instances cannot loop. It also alerts
  the administrators when the outbound queue gives a message up.
- ``NoticeComposer`` builds a notice (text, HTML and ``status.json``; S/MIME-signed
  with the agency's organisation certificate when ``[outbound] smime_cert`` is set);
  the register CLI uses it for later status notices.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.accounts import ADMIN_ROLE
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.db.session import reading
from mailsvc.delivery import Annotations
from mailsvc.documents.markings import MarkingMatch
from mailsvc.headers import encode_fields
from mailsvc.message import Direction, InboundMessage
from mailsvc.notify.exchange import HEADINGS, STATUS_LABELS, message_status
from mailsvc.outbound import queue
from mailsvc.outbound.mailer import FailedMessage, Mailer
from mailsvc.outbound.smime import SmimeSigner
from mailsvc.outcome import Accepted, Entry
from mailsvc.pipeline.antivirus import ScanResult
from mailsvc.pipeline.classification import ClassificationResult
from mailsvc.quarantine.service import count_detections, record_detection
from mailsvc.time import VIETNAM, iso_local, vn_datetime_exact
from mailsvc.verdict import Action, Finding, Status, Verdict

log = logging.getLogger(__name__)

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


def one_line(text: str) -> str:
    """A sender's text fit for a header field and a notice line: control characters
    (CR, LF, NUL ...) and line/paragraph separators become spaces, runs of spaces one, NFC.
    A Subject such as ``=?utf-8?q?a=0D=0ABcc:_x?=`` decodes to CR/LF; writing it back into
    the notice's Subject raised, and the sender never got the receipt."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return unicodedata.normalize("NFC", " ".join(cleaned.split()))


# A notice is written in its fixed shape (notice_entity): the modern EmailMessage parses
# and refolds every field when it is written, 4.5 ms of CPU per notice, the legacy MIME
# classes with their generator 0.33 ms, this 0.10 (one notice per registered document,
# in the SMTP process's acceptance transaction).
def _quoted_printable(text: str) -> bytes:
    """UTF-8 text, quoted-printable, CRLF line ends: readable in the raw message, lines of
    at most 76 characters (binascii, in C: the email package's quoprimime goes a byte at a
    time)."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _text_part(text: str, subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii")
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + _quoted_printable(text)
    )


def _multipart(subtype: str, boundary: str, parts: Sequence[bytes]) -> bytes:
    """A multipart entity (RFC 2046 5.1.1) of ``parts`` (each its header fields, a blank
    line and its body): the boundary is :func:`_boundary`'s, which none of them contains."""
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return (
        f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\n".encode("ascii")
        + delimiter.join(parts)
        + f"\r\n--{boundary}--\r\n".encode("ascii")
    )


def notice_entity(text: str, html: str, status: dict[str, Any]) -> bytes:
    """The body entity of a notice: its text and HTML (multipart/alternative) and
    ``status.json`` (base64), in a multipart/mixed; CRLF line ends.

    Written here rather than by ``email.mime`` and the generator: the structure is fixed
    and each part's encoding is done by binascii and base64, so the generator's walk
    (refolding every part's header fields, 0.2 ms a notice, one for every registered
    document, inside the acceptance transaction) has nothing to add. The tests read it
    back with the email package."""
    data = json.dumps(status, ensure_ascii=False, indent=2).encode("utf-8")
    alternative = _multipart(
        "alternative", _boundary(), [_text_part(text, "plain"), _text_part(html, "html")]
    )
    attachment = (
        b"Content-Type: application/json\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="status.json"\r\n\r\n'
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
    )
    return _multipart("mixed", _boundary(), [alternative, attachment])


def _boundary() -> str:
    """A multipart boundary that cannot occur in the notice's parts: they are
    quoted-printable (an "=" is always "=XX" or a soft line break) or base64 (no "_"), so
    "=_" never appears in them. Set before generating, it spares the generator its search
    of every part for a collision (a regular expression compiled per boundary)."""
    return f"=_mailsvc_{secrets.token_hex(16)}"


def _environment(templates: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=False
        ),
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class StatusNotice:
    """Plain values of one notice to a sender (a status message of the exchange)."""

    recipient: str
    status_code: str
    message_id: str  # the original message's
    subject: str  # the original message's
    time: datetime  # when the status was reached
    incoming_number: str = ""
    number_notation: str = ""
    reason: str = ""


class NoticeComposer:
    """Builds notices: text + HTML + ``status.json``, S/MIME-signed when configured.

    Used in the server (receipts, refusals) and by the register CLI (status changes,
    recall confirmations); the result goes into the outbound queue as bytes."""

    def __init__(
        self,
        templates: Path,
        *,
        hostname: str,
        domain: str,
        smime: SmimeSigner | None = None,
    ) -> None:
        self.env = _environment(templates)
        self.hostname = hostname
        self.postmaster = f"postmaster@{domain}"
        self.smime = smime

    @property
    def from_field(self) -> str:
        return f"Hệ thống thư công vụ <{self.postmaster}>"

    def render(self, template: str, values: dict[str, Any]) -> str:
        return self.env.get_template(template).render(values)

    def template_values(self, notice: StatusNotice) -> dict[str, Any]:
        """What the notice's two templates (text, HTML) are rendered with."""
        code = notice.status_code
        return {
            "sender": notice.recipient,
            "heading": HEADINGS[code],
            "subject": one_line(notice.subject),
            "message_id": notice.message_id,
            "number_notation": notice.number_notation,
            "time_label": "Thời điểm nhận" if code in ("01", "02", "03") else "Thời điểm",
            "time": vn_datetime_exact(notice.time),
            "status_code": code,
            "status_label": STATUS_LABELS[code],
            "incoming_number": notice.incoming_number,
            "reason": notice.reason,
            "hostname": self.hostname,
        }

    def status_message(self, notice: StatusNotice) -> bytes:
        code = notice.status_code
        values = self.template_values(notice)
        heading, subject = values["heading"], values["subject"]
        status = {
            "message_id": notice.message_id,
            "number_notation": notice.number_notation,
            "status_code": code,
            "status": STATUS_LABELS[code],
            "incoming_number": notice.incoming_number or None,
            "time": iso_local(notice.time),  # machine-readable: ISO 8601 +07:00
            "reason": notice.reason or None,
        }
        body = notice_entity(
            self.render("notice.txt.j2", values), self.render("notice.html.j2", values), status
        )
        headers = [
            ("From", self.from_field),
            ("To", notice.recipient),
            ("Subject", f"{heading.capitalize()}: {subject}"[:200]),
            ("Date", format_datetime(datetime.now(VIETNAM))),
            ("Message-ID", make_msgid(domain=self.hostname)),
            ("Auto-Submitted", "auto-replied"),
        ]
        if notice.message_id:
            headers += [("In-Reply-To", notice.message_id), ("References", notice.message_id)]
        if self.smime is not None:
            return encode_fields(headers) + self.smime.sign(body)
        return encode_fields(headers) + b"MIME-Version: 1.0\r\n" + body

    def alert(self, recipient: str, subject: str, body: str) -> EmailMessage:
        """A plain-text alert to an administrator or clerk (not S/MIME-signed)."""
        alert = EmailMessage()
        alert["From"] = self.from_field
        alert["To"] = recipient
        alert["Subject"] = one_line(subject)
        alert["Date"] = format_datetime(datetime.now(VIETNAM))
        alert["Message-ID"] = make_msgid(domain=self.hostname)
        alert["Auto-Submitted"] = "auto-generated"
        alert["Importance"] = "high"
        alert.set_content(body)
        return alert


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
                    signature=_virus_name(finding),
                    size=len(msg.raw),
                )
            elif finding.reason == "classified-content":
                marking = _deciding_marking(finding)
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
                        "rule": marking.rule if marking else "",
                        "level": marking.category if marking else "",
                        "where": marking.location if marking else "",
                        "received_at": msg.received_at.isoformat(),
                    },
                )


AUTH_PASS = frozenset({"dkim-pass", "dmarc-pass", "spf-pass"})


def _virus_name(finding: Finding) -> str:
    """The virus clamd named, from the antivirus finding's payload ("" when none)."""
    return finding.payload.signature if isinstance(finding.payload, ScanResult) else ""


def _deciding_marking(finding: Finding) -> MarkingMatch | None:
    """The marking that decided a classification refusal, from the finding's payload."""
    payload = finding.payload
    return payload.deciding if isinstance(payload, ClassificationResult) else None


def authenticated_origin(
    direction: str, authenticated_as: str | None, findings: Iterable[tuple[str, str, str]]
) -> bool:
    """Logged in to submit, or passed DKIM, SPF or DMARC: (stage, status, reason) triples."""
    if direction == Direction.SUBMISSION.value and authenticated_as:
        return True
    return any(
        stage == "authentication" and status == Status.PASS.value and reason in AUTH_PASS
        for stage, status, reason in findings
    )


def record_may_be_notified(record: MessageRecord, postmaster: str) -> bool:
    """The rule of ``NoticeFollower`` for a stored message (later status notices)."""
    if not record.mail_from or record.mail_from.lower() == postmaster:
        return False
    if record.action == Action.QUARANTINE.value:
        return False
    findings = [
        (str(f.get("stage", "")), str(f.get("status", "")), str(f.get("reason", "")))
        for f in (record.verdict or {}).get("findings", [])
        if isinstance(f, dict)
    ]
    return authenticated_origin(record.direction, record.authenticated_as, findings)


class NoticeFollower:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        mailer: Mailer,
        templates: Path,
        *,
        hostname: str,
        domain: str,
        smime: SmimeSigner | None = None,
    ) -> None:
        self.sessions = sessions
        self.mailer = mailer
        self.composer = NoticeComposer(templates, hostname=hostname, domain=domain, smime=smime)
        self.hostname = hostname
        self.postmaster = self.composer.postmaster

    @property
    def sent(self) -> list[tuple[str, str]]:
        """(kind, recipient) of everything sent, for operators and tests."""
        return self.mailer.sent

    # -- Receipts protocol (mailsvc.delivery.Acceptance) -----------------------------------
    def on_accept(
        self, session: Session, msg: InboundMessage, verdict: Verdict, entries: Sequence[Entry]
    ) -> bool:
        """In the acceptance transaction (a thread): queue the receipt for a registered
        document (03, with its numbers) or one entered without a number (01, arrived), so
        it commits with the entries it reports. True when one was queued."""
        numbers = {str(e.number) for e in entries if e.number is not None}
        arrived = any(e.status == "arrived" for e in entries)
        if not (numbers or arrived) or not self._may_notify(msg, verdict):
            return False
        code = "03" if numbers else "01"
        notice = self._notice(msg, code, incoming_number=", ".join(sorted(numbers)), reason="")
        data = self.composer.status_message(notice)
        row = queue.row_values(data, msg.mail_from, kind=f"notice-{code}", about=msg.message_id)
        queue.add(session, [row])
        log.info("notice-%s to %s queued", code, msg.mail_from)
        return True

    def after_commit(self) -> None:
        self.mailer.wake()

    # -- Follower protocol ----------------------------------------------------------------
    async def after_accept(self, msg: InboundMessage, verdict: Verdict, accepted: Accepted) -> None:
        """Nothing: the receipt of an accepted message is queued in its acceptance
        transaction (``on_accept``)."""
        return None

    async def after_refuse(self, msg: InboundMessage, verdict: Verdict) -> None:
        deciding = verdict.deciding
        if deciding is None:
            return
        if deciding.reason == "virus-found":
            await self._alert_virus(msg, _virus_name(deciding))
            return  # never a notice for a virus: the sender address is probably forged
        if deciding.reason == "classified-content":
            await self._alert_classified(msg, _deciding_marking(deciding))
        if deciding.reason in NOTICE_REASONS and self._may_notify(msg, verdict):
            await self._send_notice(
                msg, "02", incoming_number="", reason=NOTICE_REASONS[deciding.reason]
            )

    async def alert_undelivered(self, failed: FailedMessage) -> None:
        """Mailer.on_failure: tell the administrators a message was given up."""
        values = {
            "kind": failed.kind,
            "recipient": failed.recipient,
            "attempts": failed.attempts,
            "queued_at": vn_datetime_exact(failed.created_at),
            "error": failed.error,
            "queue_row": failed.id,
        }
        await self._alert(
            f"[Cảnh báo] Không gửi được thư tới {failed.recipient}",
            self.composer.render("alert_undelivered.txt.j2", values),
            kind="undelivered",
        )

    async def alert_daemon_down(self, service: str, failures: int, reason: str) -> None:
        """SupervisedProcess.on_failures: Dovecot or clamd keeps failing to start."""
        from mailsvc.db.base import utcnow

        values = {
            "service": service,
            "failures": failures,
            "time": vn_datetime_exact(utcnow()),
            "reason": reason or "không rõ",
        }
        await self._alert(
            f"[Cảnh báo] Dịch vụ {service} không khởi động lại được",
            self.composer.render("alert_daemon.txt.j2", values),
            kind="daemon",
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
        if message_status(msg, verdict) is not None:
            return False  # a status message is never answered
        findings = [(f.stage, f.status.value, f.reason) for f in verdict.findings]
        return verdict.action is not Action.QUARANTINE and authenticated_origin(
            msg.direction.value, msg.authenticated_as, findings
        )

    # -- building and sending --------------------------------------------------------------
    async def _send_notice(
        self, msg: InboundMessage, code: str, *, incoming_number: str, reason: str
    ) -> None:
        notice = self._notice(msg, code, incoming_number=incoming_number, reason=reason)
        data = await asyncio.to_thread(self.composer.status_message, notice)
        await self.mailer.send(data, msg.mail_from, kind=f"notice-{code}", about=msg.message_id)

    @staticmethod
    def _notice(
        msg: InboundMessage, code: str, *, incoming_number: str, reason: str
    ) -> StatusNotice:
        return StatusNotice(
            recipient=msg.mail_from,
            status_code=code,
            message_id=msg.message_id,
            subject=msg.subject,
            time=msg.received_at,
            incoming_number=incoming_number,
            reason=reason,
        )

    async def _alert_virus(self, msg: InboundMessage, signature: str) -> None:
        count = await asyncio.to_thread(self._recent_detections, msg.client_ip)
        values = {
            "time": vn_datetime_exact(msg.received_at),
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
            self.composer.render("alert_virus.txt.j2", values),
            kind="outbreak" if values["outbreak"] else "virus",
            about=msg.rcpt_tos,
        )

    async def _alert_classified(self, msg: InboundMessage, marking: MarkingMatch | None) -> None:
        values = {
            "time": vn_datetime_exact(msg.received_at),
            "queue_id": msg.queue_id,
            "sender": msg.mail_from,
            "client_ip": msg.client_ip,
            "level": marking.title if marking else "",
            "rule": marking.rule if marking else "",
            "where": marking.location if marking else "",
            "sha256": msg.sha256,
        }
        await self._alert(
            "[Cảnh báo] Từ chối thư có dấu hiệu chứa nội dung mật",
            self.composer.render("alert_classified.txt.j2", values),
            kind="classified",
            about=msg.rcpt_tos,
        )

    def _recent_detections(self, client_ip: str) -> int:
        from mailsvc.db.base import utcnow

        with reading(self.sessions) as session:
            return count_detections(session, since=utcnow() - OUTBREAK_WINDOW, client_ip=client_ip)

    def _admins(self, about: Sequence[str] | None) -> list[str]:
        """The enabled administrator mailboxes to alert. ``about``: the recipients of the
        message the alert is about; then only the administrators of no agency (the
        server's operators) and those of the recipients' agencies are told: on a server
        hosting several agencies, one agency's refusals are not shown to another's.
        None (a daemon, the outbound queue): every administrator."""
        with reading(self.sessions) as session:
            query = select(Mailbox.address).where(
                Mailbox.role == ADMIN_ROLE,
                Mailbox.enabled.is_(True),
                Mailbox.removed.is_(False),
            )
            if about is not None:
                agencies = select(Mailbox.agency_id).where(
                    Mailbox.address.in_([a.lower() for a in about]),
                    Mailbox.agency_id.is_not(None),
                )
                query = query.where(
                    or_(Mailbox.agency_id.is_(None), Mailbox.agency_id.in_(agencies))
                )
            return list(session.scalars(query.order_by(Mailbox.address)).all())

    async def _alert(
        self, subject: str, body: str, *, kind: str, about: Sequence[str] | None = None
    ) -> None:
        for admin in await asyncio.to_thread(self._admins, about):
            alert = self.composer.alert(admin, subject, body)
            await self.mailer.send(alert, admin, kind=f"alert-{kind}")
