"""What a scheduled job receives: the settings, the database and a way to send mail.

Every job is ``async def <name>_job(ctx: JobContext) -> str``: it does one unit of
work and returns a one-line summary for the job-run record and the logs. ``ctx.now``
is the run's reference time (tests pass a chosen time; the scheduler passes the
scheduled time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings
from mailsvc.outbound.mailer import Mailer


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    sessions: sessionmaker[Session]
    mailer: Mailer | None  # None when no mail can be sent (then a job logs what it skipped)
    now: datetime
