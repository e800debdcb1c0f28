"""Delivery status notifications (RFC 3464) for mail our officials sent to other servers.

A DSN is a ``multipart/report; report-type=delivery-status`` with three parts: a
Vietnamese explanation for the official (``templates/outbound/``), the machine-readable
``message/delivery-status`` (one per-recipient block: Final-Recipient, Action ``failed``
or ``delayed``, Status, Diagnostic-Code) and the original message's header section
(``text/rfc822-headers``; the body is not returned). It goes from the null sender
(``MAIL FROM:<>``) with ``Auto-Submitted: auto-replied``, so it is never bounced in its
turn, and it is never sent about a message that itself had the null sender.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mailsvc.message import field_text, parse_head, split_head
from mailsvc.time import VIETNAM, iso_local

_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class FailedRecipient:
    recipient: str
    diagnostic: str  # the other server's answer, or our own error
    code: int = 0  # the SMTP reply code; 0 when no server answered

    @property
    def status(self) -> str:
        """The enhanced status code (RFC 3463): from the answer, else from its class."""
        found = _CODE.search(self.diagnostic)
        if found:
            return ".".join(found.groups())
        if 500 <= self.code < 600:
            return "5.0.0"
        return "4.4.1" if self.code == 0 else "4.0.0"

    def reason(self, expired: bool) -> str:
        status = self.status
        if status.startswith("5.1."):
            return "Địa chỉ người nhận không tồn tại."
        if status.startswith("5.2.2") or status.startswith("4.2.2"):
            return "Hộp thư của người nhận đã đầy."
        if status.startswith("5.7."):
            return "Máy chủ nhận từ chối thư theo chính sách an toàn."
        if expired:
            return "Không kết nối được tới máy chủ nhận trong thời gian cho phép."
        return "Máy chủ nhận từ chối thư."


class DsnComposer:
    def __init__(self, templates: Path, *, hostname: str, domain: str) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(templates)),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self.hostname = hostname
        self.postmaster = f"postmaster@{domain}"

    def compose(
        self,
        original: bytes,
        sender: str,
        recipients: Sequence[FailedRecipient],
        *,
        queued_at: datetime,
        delayed: bool = False,
        give_up_at: datetime | None = None,
        lifetime: str = "",
        expired: bool = False,
    ) -> bytes:
        head = parse_head(original)
        subject = field_text(head, "Subject")
        message_id = field_text(head, "Message-ID").strip()
        values = {
            "sender": sender,
            "hostname": self.hostname,
            "subject": subject,
            "message_id": message_id,
            "queued_at": iso_local(queued_at),
            "give_up_at": iso_local(give_up_at) if give_up_at else "",
            "lifetime": lifetime,
            "expired": expired,
            "recipients": [
                {"recipient": r.recipient, "diagnostic": r.diagnostic, "reason": r.reason(expired)}
                for r in recipients
            ],
        }
        template = "delay.txt.j2" if delayed else "bounce.txt.j2"
        text = self.env.get_template(template).render(values)

        report = EmailMessage(policy=SMTP_POLICY)
        heading = "Thư chưa gửi được (đang thử lại)" if delayed else "Thư không gửi được"
        report["From"] = f"Hệ thống thư công vụ <{self.postmaster}>"
        report["To"] = sender
        report["Subject"] = f"{heading}: {subject}"[:200]
        report["Date"] = format_datetime(datetime.now(VIETNAM))
        report["Message-ID"] = make_msgid(domain=self.hostname)
        report["Auto-Submitted"] = "auto-replied"
        if message_id:
            report["In-Reply-To"] = message_id
            report["References"] = message_id
        report.set_content(text, cte="quoted-printable")
        report.make_mixed()
        report.set_type("multipart/report")
        report.set_param("report-type", "delivery-status")

        status = Message()
        status.set_type("message/delivery-status")
        del status["MIME-Version"]
        per_message = Message()
        per_message["Reporting-MTA"] = f"dns; {self.hostname}"
        per_message["Arrival-Date"] = format_datetime(queued_at.astimezone(VIETNAM))
        status.attach(per_message)
        for r in recipients:
            block = Message()
            block["Final-Recipient"] = f"rfc822; {r.recipient}"
            block["Action"] = "delayed" if delayed else "failed"
            block["Status"] = "4.4.7" if delayed and not r.status.startswith("4") else r.status
            block["Diagnostic-Code"] = f"smtp; {_one_line(r.diagnostic)}"
            if delayed and give_up_at is not None:
                block["Will-Retry-Until"] = format_datetime(give_up_at.astimezone(VIETNAM))
            status.attach(block)
        report.attach(status)  # type: ignore[arg-type]

        headers = Message()
        headers.set_type("text/rfc822-headers")
        original_head = split_head(original)[0]
        if original_head.isascii():
            headers.set_payload(original_head.decode("ascii") + "\r\n")
        else:  # raw UTF-8 header fields (RFC 6532): kept, transfer-encoded
            headers.set_payload(original_head.decode("utf-8", "replace") + "\r\n", charset="utf-8")
        del headers["MIME-Version"]
        report.attach(headers)  # type: ignore[arg-type]
        return report.as_bytes(policy=SMTP_POLICY)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]
