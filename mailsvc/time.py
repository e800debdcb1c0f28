"""Time as officials read it: ISO 8601 in Vietnam's zone (+07:00). Stored times are UTC."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def iso_local(moment: datetime) -> str:
    """``2026-11-21T08:00:00+07:00`` (seconds precision)."""
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()
