"""The durable outbound queue: mail the service writes (notices, alerts, reports) and the
few mailbox actions that must follow a committed decision (voiding a recalled copy).

A row is written, and committed, before ``Mailer.send`` returns or in the same
transaction as the decision that causes it (the CLI's status change), so nothing is lost
if the process stops. ``state`` is ``queued`` until delivered (``sent``) or given up
(``failed``). ``next_attempt_at`` is when the row is due; while a worker holds it, the
same column is the worker's lease (a crashed worker's row becomes due again).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
HELD = "held"  # kept back by an administrator (`mailsvc queue hold`)

# Kind of mail from our officials to other servers (the rest is mail the service writes).
SUBMISSION = "submission"

# Kind of a row that is a mailbox action, not mail: move the delivered copy of a
# recalled document (``about`` = its queue id) out of ``recipient``'s INBOX.
VOID_COPY = "void-copy"


class OutboundMessage(Base):
    __tablename__ = "outbound_message"
    __table_args__ = (Index("ix_outbound_message_state_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # notice-03, alert-virus, void-copy ...
    sender: Mapped[str] = mapped_column(String(320), default="")  # envelope; "" = null
    recipient: Mapped[str] = mapped_column(String(320))
    about: Mapped[str] = mapped_column(String(998), default="")  # Message-ID or queue id
    data: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    last_error: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Mail from officials: the message's key (Message-ID + content), the delay warning.
    message_key: Mapped[str] = mapped_column(String(64), default="")
    warned_at: Mapped[datetime | None] = mapped_column(default=None)
