"""Scheduler tables: job runs (the claim that makes a scheduled job run once across
nodes), the day's overdue reminders, and APScheduler's own job store.

``job_run`` has one row per (job, scheduled time): a node inserts its claim before
running and runs only if the insert succeeded, so two nodes that both see a job due
run it once. Manual runs (``mailsvc jobs run``) are rows too, with the time asked.
While a run goes on, its node refreshes ``heartbeat_at``; a ``running`` claim whose
heartbeat is older than ``[jobs] stale_after_seconds`` was left by a node that died, and
the other nodes record it ``interrupted``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailsvc.db.base import Base, utcnow

# APScheduler 3's SQLAlchemyJobStore table, declared here so that migrations own it
# (the job store only creates it when missing). Columns as in apscheduler.jobstores.sqlalchemy.
APSCHEDULER_JOBS = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class JobRun(Base):
    """One run of a job: claimed by a node for a scheduled time, then its outcome."""

    __tablename__ = "job_run"
    __table_args__ = (
        UniqueConstraint("job", "scheduled_for"),
        Index("ix_job_run_job_started", "job", "started_at"),
        Index("ix_job_run_outcome_heartbeat", "outcome", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(128))
    scheduled_for: Mapped[datetime] = mapped_column()
    node: Mapped[str] = mapped_column(String(128))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)  # the node is alive
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # running|ok|failed|...
    summary: Mapped[str] = mapped_column(Text, default="")


class OverdueReminder(Base):
    """An overdue register entry was reminded on this (local) day: at most once a day."""

    __tablename__ = "overdue_reminder"
    __table_args__ = (UniqueConstraint("document_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("register_document.id"))
    day: Mapped[date] = mapped_column(Date)
    recipients: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
