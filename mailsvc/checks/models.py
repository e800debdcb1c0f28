"""Mailbox-check records (domain §9) and the alerts raised from them.

- ``MailboxCheck``: one row per check of a mailbox: an authenticated IMAP session that
  selected or examined INBOX (``source = "imap"``), or a poll of an external mailbox
  (``source = "poll"``). ``session`` is Dovecot's session id (or the poll's id) and is
  unique, so reading the same event twice records one check.
- ``ImapSession``: logins seen in Dovecot's event log, kept to join a later SELECT to
  its login (master-user service sessions are not checks) and to its IMAP ID.
- ``LogCursor``: how far a log has been read (file identity + byte offset), saved in the
  same transaction as the rows read from it: nothing lost, nothing counted twice.
- ``CheckAlert``: one row per alert raised; ``key`` is unique, so a missed window or a
  late priority message raises one alert, however often the evaluation runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow


class MailboxCheck(Base):
    __tablename__ = "mailbox_check"
    __table_args__ = (Index("ix_mailbox_check_mailbox_at", "mailbox", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(16), default="imap")
    session: Mapped[str] = mapped_column(String(128), unique=True)
    remote_ip: Mapped[str] = mapped_column(String(64), default="")
    client: Mapped[str] = mapped_column(String(256), default="")
    new_messages: Mapped[int] = mapped_column(Integer, default=0)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImapSession(Base):
    __tablename__ = "imap_session"

    session: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str] = mapped_column(String(320))
    master_user: Mapped[str] = mapped_column(String(320), default="")
    remote_ip: Mapped[str] = mapped_column(String(64), default="")
    client: Mapped[str] = mapped_column(String(256), default="")
    login_at: Mapped[datetime] = mapped_column(index=True)


class LogCursor(Base):
    __tablename__ = "log_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), default="")  # "device:inode"
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckAlert(Base):
    __tablename__ = "check_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    # window-missed | priority-late | priority-arrived
    kind: Mapped[str] = mapped_column(String(32))
    mailbox: Mapped[str] = mapped_column(String(320))
    raised_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
