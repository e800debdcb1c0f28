"""Core models: agencies, mailboxes, authentication failures, audit log, messages.

Other pieces keep their models beside them (``mailsvc/register/models.py`` ...);
``mailsvc.db.all_models`` imports them all so Alembic sees one metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailsvc.db.base import Base, utcnow


class Agency(Base):
    """An agency in the directory (cơ quan), identified by its code (mã định danh)."""

    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(512))
    domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    known_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Closed networks: DKIM public keys pinned per "selector._domainkey.domain" name.
    dkim_keys: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Addresses (or networks) allowed to send for the agency's domains, replacing SPF lookups.
    allowed_senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Addresses any of the agency's mailboxes may use as envelope sender / From: on submission.
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    # Closed networks: where mail for the agency goes ("HOST:PORT"), instead of MX.
    route: Mapped[str] = mapped_column(String(320), default="")
    # Its pinned networks and DKIM keys also vouch for subdomains of its domains.
    include_subdomains: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailboxes: Mapped[list[Mailbox]] = relationship(back_populates="agency")


class Mailbox(Base):
    """A local mailbox served by Dovecot; Dovecot's passdb reads this table."""

    __tablename__ = "mailbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(256), default="")
    unit: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16), default="official")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"), default=None)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    # 1 while the password is one-time: Dovecot refuses IMAP with nologin + reason.
    must_change: Mapped[bool] = mapped_column(Boolean, default=True)
    password_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)

    agency: Mapped[Agency | None] = relationship(back_populates="mailboxes")


class AuthFailure(Base):
    """Failed logins per (account, client address), for lock-out with back-off."""

    __tablename__ = "auth_failure"
    __table_args__ = (UniqueConstraint("account", "client_ip"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(320))
    client_ip: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """Append-only, hash-chained record of every administrative action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class MessageRecord(Base):
    """One accepted message per recipient mailbox: its blob, verdict and delivery state.

    ``state`` is ``stored`` once the blob is fsynced and the row committed, and
    ``delivered`` after Dovecot's LMTP 250 (written just after the SMTP reply, with the
    other marks of the moment). Rows left ``stored`` are delivered at start-up and by the
    repairer, each after a search of the mailbox for its copy.
    """

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("message_key", "recipient"),
        Index("ix_message_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), index=True)
    message_key: Mapped[str] = mapped_column(String(64))  # sha256 of Message-ID + content
    message_id: Mapped[str] = mapped_column(String(998), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    recipient: Mapped[str] = mapped_column(String(320))
    direction: Mapped[str] = mapped_column(String(16))
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    authenticated_as: Mapped[str | None] = mapped_column(String(320), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(16))
    folder: Mapped[str] = mapped_column(String(64), default="INBOX")
    flags: Mapped[str] = mapped_column(String(128), default="")
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    headers: Mapped[str] = mapped_column(Text, default="")  # headers we prepend on delivery
    state: Mapped[str] = mapped_column(String(16), default="stored")
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
