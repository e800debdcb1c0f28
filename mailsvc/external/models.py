"""What we know about each external mailbox, and every UID taken from it.

- ``ExternalState``: one row per configured mailbox (by name): the folder's UIDVALIDITY,
  the highest UID handled under it, the last poll and the last error. ``last_uid`` moves
  in the same transaction as the ``ExternalFetch`` row of that UID, and only after the
  message was accepted durably (or refused and recorded): a restart resumes after it.
- ``ExternalFetch``: one row per (mailbox, UIDVALIDITY, UID) handled, with its outcome:
  ``accepted`` (committed and delivered), ``duplicate`` (the same message was already
  accepted: linked to the first, delivered once), ``refused`` (left on the remote server,
  recorded and audited), ``vanished`` (expunged remotely before we could fetch it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow

OUTCOMES = ("accepted", "duplicate", "refused", "vanished")


class ExternalState(Base):
    __tablename__ = "external_mailbox"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    idle: Mapped[bool] = mapped_column(Boolean, default=False)
    last_poll_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_poll_new: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    last_error_at: Mapped[datetime | None] = mapped_column(nullable=True)
    poll_requested_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalFetch(Base):
    __tablename__ = "external_fetch"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64), default="")
    queue_id: Mapped[str] = mapped_column(String(32), default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
