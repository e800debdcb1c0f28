"""Every scheduled job as one visible table: name, function (by dotted path), schedule.

Functions are named by ``"module:function"`` and imported when the job runs, so a job
whose module is not installed yet is listed as unavailable and skipped, never a crash.
Schedules are in Vietnam's zone (+07:00). Interval schedules count from a fixed anchor,
so every node computes the same run times (the run-once claim keys on them).

``scope`` says where a job runs: ``cluster`` jobs live in the shared job store and run
once for the whole service; ``node`` jobs (the CRL cache under this node's HOME) run on
every node, at start and on their interval.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailsvc.config import Settings
from mailsvc.errors import ConfigError, MailsvcError
from mailsvc.jobs.context import JobContext
from mailsvc.time import VIETNAM

JobFunction = Callable[[JobContext], Awaitable[str]]

# Interval schedules count from here (a fixed instant), not from each node's start.
INTERVAL_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


class JobUnavailable(MailsvcError):
    """The job's module or function is not installed on this node."""


@dataclass(frozen=True)
class Schedule:
    trigger: BaseTrigger
    text: str  # for `mailsvc jobs list`


@dataclass(frozen=True)
class JobSpec:
    name: str
    target: str  # "package.module:function", imported at run time
    description: str
    schedule: Callable[[Settings], Schedule]
    scope: Literal["cluster", "node"] = "cluster"
    at_start: bool = True  # node jobs: also run when serve starts


def every(minutes: float) -> Schedule:
    trigger = IntervalTrigger(minutes=minutes, start_date=INTERVAL_ANCHOR, timezone=VIETNAM)
    return Schedule(trigger, f"every {minutes:g} min")


def daily(at: str, *, setting: str = "") -> Schedule:
    """Every day at ``HH:MM`` (+07:00)."""
    hour, minute = _hhmm(at, setting)
    trigger = CronTrigger(hour=hour, minute=minute, timezone=VIETNAM)
    return Schedule(trigger, f"daily {hour:02d}:{minute:02d}")


def quarterly(at: str) -> Schedule:
    """07:00 (or ``at``) on the first day of January, April, July and October (+07:00)."""
    hour, minute = _hhmm(at, "")
    trigger = CronTrigger(month="1,4,7,10", day=1, hour=hour, minute=minute, timezone=VIETNAM)
    return Schedule(trigger, f"quarterly, day 1 {hour:02d}:{minute:02d}")


def _hhmm(value: str, setting: str) -> tuple[int, int]:
    hour, sep, minute = value.strip().partition(":")
    if sep and hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60:
        return int(hour), int(minute)
    where = f"mailsvc.toml: key '{setting}': " if setting else ""
    raise ConfigError(f"{where}expected a local time HH:MM, got {value!r}")


def crl_refresh_minutes(settings: Settings) -> int:
    # Imported here: mailsvc.app builds the scheduler, so it cannot be imported at load time.
    from mailsvc.app import policies_dir
    from mailsvc.signatures.policy import load_signature_policy

    return load_signature_policy(policies_dir(settings) / "signature.yaml").crl_refresh_minutes


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        "crl-refresh",
        "mailsvc.jobs.maintenance:crl_refresh_job",
        "Fetch the configured CRLs into this node's cache",
        lambda s: every(crl_refresh_minutes(s)),
        scope="node",
    ),
    JobSpec(
        "clamav-update",
        "mailsvc.jobs.maintenance:clamav_update_job",
        "Update this node's virus signatures (freshclam) and alert when they are too old",
        lambda s: every(s.clamav.update_hours * 60),
        scope="node",
        # Not at start: a first download is ~200 MB and clamd then reloads for a minute.
        at_start=False,
    ),
    JobSpec(
        "backup",
        "mailsvc.backup.archive:backup_job",
        "Daily backup archive of the database, blobs and mail",
        lambda s: daily(s.backup.daily_at, setting="backup.daily_at"),
    ),
    JobSpec(
        "compliance-alerts",
        "mailsvc.checks.alerts:compliance_alerts_job",
        "Alert when the official mailbox is not checked as required",
        lambda s: every(5),
    ),
    JobSpec(
        "quarterly-statistics",
        "mailsvc.register.statistics:quarterly_statistics_job",
        "Documents received and sent per agency last quarter, mailed to leaders",
        lambda s: quarterly("07:00"),
    ),
    JobSpec(
        "overdue-reminders",
        "mailsvc.register.reminders:overdue_reminders_job",
        "Remind assignees, clerks and leaders of documents past their deadline",
        lambda s: daily("07:30"),
    ),
    JobSpec(
        "holiday-swaps",
        "mailsvc.checks.calendar:holiday_swaps_job",
        "From 1 December, warn while next year's announced working-day swaps are missing",
        lambda s: daily("08:00"),
    ),
    JobSpec(
        "retention-purge",
        "mailsvc.jobs.maintenance:retention_purge_job",
        "Purge old job runs, reminders, failed-login rows and mailbox-check records",
        lambda s: daily("03:15"),
    ),
)


def find_spec(name: str, specs: tuple[JobSpec, ...] = JOBS) -> JobSpec | None:
    return next((spec for spec in specs if spec.name == name), None)


def load_function(target: str) -> JobFunction:
    """Import ``module:function``; :class:`JobUnavailable` says why it cannot be."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise JobUnavailable(f"module {module_name} is not installed") from exc
        raise JobUnavailable(f"module {module_name} cannot be imported: {exc}") from exc
    except ImportError as exc:
        raise JobUnavailable(f"module {module_name} cannot be imported: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise JobUnavailable(f"{module_name} has no job function {attribute}")
    return cast(JobFunction, function)


def unavailable_reason(spec: JobSpec) -> str:
    """'' when the job's function can be imported, else why not."""
    try:
        load_function(spec.target)
    except JobUnavailable as exc:
        return str(exc)
    return ""
