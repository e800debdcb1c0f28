"""Signed-in browser sessions of the workspace.

The cookie holds a random token; the table keeps only its SHA-256, so a copy of the
database (or a backup) cannot be replayed as a session. A session ends at sign-out, after
``idle_minutes`` without a request, or after ``max_hours`` in any case.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow


class WebSession(Base):
    __tablename__ = "web_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
