"""One row per message refused because clamd found a virus in it. Never the content."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow


class VirusDetection(Base):
    """A virus found at DATA: hash, envelope, client address and signature name."""

    __tablename__ = "virus_detection"
    __table_args__ = (
        Index("ix_virus_detection_client_ip_at", "client_ip", "detected_at"),
        Index("ix_virus_detection_mail_from_at", "mail_from", "detected_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    queue_id: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    mail_from: Mapped[str] = mapped_column(String(320))  # "" for the null sender
    client_ip: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    signature: Mapped[str] = mapped_column(String(256))
