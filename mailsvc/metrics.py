"""Prometheus metrics, one registry per App (no module-level singletons).

Counted as they happen (this process): messages, verdicts, findings, deliveries and LMTP
latency. Read from the shared database at scrape time (so every node shows the service's
state, and a restart loses nothing): register entries, the outbound queue, job runs, the
last backup. Refreshed before each scrape: component health, ClamAV signature age and CRL
next updates. Plus the process and Python collectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.session import reading

log = logging.getLogger(__name__)

# Every metric name mailsvc exports (tests/e2e/test_observability.py checks /metrics).
NAMES = (
    "mailsvc_messages_total",
    "mailsvc_verdicts_total",
    "mailsvc_findings_total",
    "mailsvc_data_seconds",
    "mailsvc_deliveries_total",
    "mailsvc_lmtp_seconds",
    "mailsvc_register_entries",
    "mailsvc_outbound_queue_depth",
    "mailsvc_outbound_oldest_age_seconds",
    "mailsvc_job_runs_total",
    "mailsvc_job_last_success_timestamp_seconds",
    "mailsvc_backup_last_timestamp_seconds",
    "mailsvc_backup_last_size_bytes",
    "mailsvc_up",
    "mailsvc_clamav_signature_age_seconds",
    "mailsvc_crl_next_update_timestamp_seconds",
    "mailsvc_holiday_swaps_missing",
    "process_resident_memory_bytes",
)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages = Counter(
            "mailsvc_messages_total",
            "Messages by listener and final action",
            ["listener", "action"],
            registry=registry,
        )
        self.verdicts = Counter(
            "mailsvc_verdicts_total",
            "Verdicts by direction, action and deciding reason ('none' when delivered clean)",
            ["direction", "action", "reason"],
            registry=registry,
        )
        self.findings = Counter(
            "mailsvc_findings_total",
            "Stage findings by stage and status",
            ["stage", "status"],
            registry=registry,
        )
        self.data_seconds = Histogram(
            "mailsvc_data_seconds",
            "Time from end of DATA to the reply",
            ["listener"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.deliveries = Counter(
            "mailsvc_deliveries_total",
            "LMTP deliveries into Dovecot by folder and result (delivered, failed)",
            ["folder", "result"],
            registry=registry,
        )
        self.lmtp_seconds = Histogram(
            "mailsvc_lmtp_seconds",
            "Time of one LMTP delivery (Dovecot's 250 included)",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.up = Gauge(
            "mailsvc_up",
            "1 when the component answers (database, dovecot, clamd), else 0",
            ["component"],
            registry=registry,
        )
        self.signature_age = Gauge(
            "mailsvc_clamav_signature_age_seconds",
            "Age of the newest ClamAV signature database clamd has loaded",
            registry=registry,
        )
        self.crl_next_update = Gauge(
            "mailsvc_crl_next_update_timestamp_seconds",
            "nextUpdate of each cached CRL (Unix time), by issuer",
            ["issuer"],
            registry=registry,
        )
        self.holiday_swaps_missing = Gauge(
            "mailsvc_holiday_swaps_missing",
            "1 from 1 December while next year's announced working-day swaps are not in "
            "policies/checking.yaml",
            registry=registry,
        )
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    def watch_database(
        self, sessions: sessionmaker[Session], backup_dir: Callable[[], Path]
    ) -> None:
        """Add the collector that reads the service's state from the database."""
        self.registry.register(StateCollector(sessions, backup_dir))

    def record_health(self, checks: dict[str, str]) -> None:
        for component, state in checks.items():
            if component in ("database", "dovecot", "clamd"):
                self.up.labels(component).set(1 if state == "ok" else 0)

    def record_crls(self, next_updates: dict[str, datetime]) -> None:
        self.crl_next_update.clear()
        for issuer, when in next_updates.items():
            self.crl_next_update.labels(issuer).set(when.timestamp())


class StateCollector(Collector):
    """Register, outbound queue, job runs and last backup, read at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], backup_dir: Callable[[], Path]) -> None:
        self.sessions = sessions
        self.backup_dir = backup_dir

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the registry must not query the database on register

    def collect(self) -> Iterator[Metric]:
        # Imported here: the models import the database layer, which imports nothing of ours.
        from mailsvc.jobs.models import JobRun
        from mailsvc.outbound.models import HELD, QUEUED, OutboundMessage
        from mailsvc.register.models import RegisterDocument

        now = datetime.now(UTC)
        entries = GaugeMetricFamily(
            "mailsvc_register_entries",
            "Incoming register entries by status and signature outcome",
            labels=["status", "outcome"],
        )
        depth = GaugeMetricFamily(
            "mailsvc_outbound_queue_depth", "Outbound messages waiting to be sent"
        )
        oldest = GaugeMetricFamily(
            "mailsvc_outbound_oldest_age_seconds", "Age of the oldest waiting outbound message"
        )
        runs = CounterMetricFamily(
            "mailsvc_job_runs", "Job runs recorded, by job and outcome", labels=["job", "outcome"]
        )
        last_ok = GaugeMetricFamily(
            "mailsvc_job_last_success_timestamp_seconds",
            "End of each job's last successful run (Unix time)",
            labels=["job"],
        )
        try:
            with reading(self.sessions) as session:
                for status, outcome, count in session.execute(
                    select(
                        RegisterDocument.status,
                        RegisterDocument.signature_outcome,
                        func.count(),
                    ).group_by(RegisterDocument.status, RegisterDocument.signature_outcome)
                ):
                    entries.add_metric([status, outcome], count)
                waiting, first = session.execute(
                    select(func.count(), func.min(OutboundMessage.created_at)).where(
                        OutboundMessage.state.in_((QUEUED, HELD))  # held mail is waiting too
                    )
                ).one()
                depth.add_metric([], waiting)
                oldest.add_metric([], (now - _utc(first)).total_seconds() if first else 0.0)
                for job, outcome, count in session.execute(
                    select(JobRun.job, JobRun.outcome, func.count()).group_by(
                        JobRun.job, JobRun.outcome
                    )
                ):
                    runs.add_metric([job, outcome], count)
                for job, finished in session.execute(
                    select(JobRun.job, func.max(JobRun.finished_at))
                    .where(JobRun.outcome == "ok")
                    .group_by(JobRun.job)
                ):
                    if finished is not None:
                        last_ok.add_metric([job], _utc(finished).timestamp())
        except Exception:  # boundary: a scrape must not fail because the database did
            log.exception("metrics: reading the database failed")
            return
        yield from (entries, depth, oldest, runs, last_ok)
        yield from _backup_metrics(self.backup_dir())


def _backup_metrics(directory: Path) -> Iterator[Metric]:
    archives = sorted(
        (p for p in directory.glob("mailsvc-backup-*.tar*") if p.is_file()),
        key=lambda p: p.stat().st_mtime,
    ) if directory.is_dir() else []
    when = GaugeMetricFamily(
        "mailsvc_backup_last_timestamp_seconds", "When the newest backup archive was written"
    )
    size = GaugeMetricFamily(
        "mailsvc_backup_last_size_bytes", "Size of the newest backup archive"
    )
    if archives:
        stat = archives[-1].stat()
        when.add_metric([], stat.st_mtime)
        size.add_metric([], stat.st_size)
    yield when
    yield size


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
