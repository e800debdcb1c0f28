"""Time in Vietnam's zone. Stored times are UTC; machine output is ISO 8601 with +07:00;
what clerks, leaders and officials read is dd/mm/yyyy (and HH:MM)."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def iso_local(moment: datetime) -> str:
    """``2026-11-21T08:00:00+07:00`` (seconds precision)."""
    return moment.astimezone(VIETNAM).replace(microsecond=0).isoformat()


def vn_date(day: date | None) -> str:
    """A date as people read it in Vietnam: ``21/11/2026`` (dd/mm/yyyy); "" for None."""
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}" if day else ""


def vn_datetime(moment: datetime | None, zone: tzinfo = VIETNAM) -> str:
    """A moment as people read it: ``08:00 21/11/2026`` in Vietnam's zone; "" for None.
    Machine output (JSON, logs, headers) stays ISO 8601 with +07:00 (:func:`iso_local`)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    return f"{local.hour:02d}:{local.minute:02d} {vn_date(local.date())}"


def vn_datetime_exact(moment: datetime) -> str:
    """For notices that stand as a record (receipts, alerts): what people read, then the
    exact ISO 8601 moment: ``08:00 21/11/2026 (2026-11-21T08:00:00+07:00)``."""
    return f"{vn_datetime(moment)} ({iso_local(moment)})"
