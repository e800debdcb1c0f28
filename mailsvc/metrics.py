"""Prometheus metrics, one registry per App (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages = Counter(
            "mailsvc_messages_total",
            "Messages by listener and final action",
            ["listener", "action"],
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
        self.queue_depth = Gauge(
            "mailsvc_outbound_queue_depth",
            "Messages in the outbound queue by state (queued, held)",
            ["state"],
            registry=registry,
        )
        self.queue_oldest_seconds = Gauge(
            "mailsvc_outbound_queue_oldest_seconds",
            "Age of the oldest message still queued or held (0 when empty)",
            registry=registry,
        )
