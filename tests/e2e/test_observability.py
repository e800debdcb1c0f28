"""Monitoring on its own plain-HTTP loopback listener: every metric name mailsvc documents
is exported, delivery and verdict counters move with a real message, the delivery is logged
as one Postfix-style line, and /healthz reports each component."""

from __future__ import annotations

import asyncio
import logging
import re
from email.message import EmailMessage

import httpx
import pytest

from mailsvc.metrics import NAMES
from tests.e2e.conftest import DOMAIN, RunningServer

CLERK = f"vanthu@{DOMAIN}"


def _mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Phòng Hành chính <hanhchinh@congty.example.com>"
    msg["To"] = CLERK
    msg["Subject"] = subject
    msg["Message-ID"] = "<observability-1@congty.example.com>"
    msg.set_content("Kính gửi Văn thư.\n")
    return msg.as_bytes()


async def test_metrics_names_counters_and_the_delivery_line(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_mailbox(CLERK)
    host, port = server.addr("metrics")
    assert host == "127.0.0.1"
    base = f"http://{host}:{port}"

    def send() -> None:
        with server.smtp() as client:
            client.sendmail("hanhchinh@congty.example.com", [CLERK], _mail("Thử nghiệm"))

    with caplog.at_level(logging.INFO, logger="mailsvc.delivery"):
        await asyncio.to_thread(send)
    async with httpx.AsyncClient(base_url=base) as client:
        metrics = (await client.get("/metrics")).text
        health = (await client.get("/healthz")).json()

    for name in NAMES:
        family = name.removesuffix("_total")
        assert re.search(rf"^# TYPE {family}(_total)? ", metrics, re.M), name
    assert 'mailsvc_deliveries_total{folder="INBOX",result="delivered"} 1.0' in metrics
    assert "mailsvc_lmtp_seconds_count 1.0" in metrics
    assert (
        'mailsvc_verdicts_total{action="deliver",direction="inbound",reason="none"} 1.0'
        in metrics
    )
    assert 'mailsvc_up{component="database"} 1.0' in metrics
    assert 'mailsvc_up{component="dovecot"} 1.0' in metrics
    assert "mailsvc_outbound_queue_depth " in metrics
    assert health["checks"]["database"] == "ok" and health["checks"]["dovecot"] == "ok"
    assert health["checks"]["holidays"] == "ok"  # next year's swaps are listed

    (line,) = [r.getMessage() for r in caplog.records if r.name == "mailsvc.delivery"]
    assert re.fullmatch(
        r"[0-9A-F]+: to=<vanthu@sotttt\.example\.vn>, from=<hanhchinh@congty\.example\.com>, "
        r"size=\d+, delay=\d+\.\d\d, delays=\d+\.\d\d/\d+\.\d{3}, verdict=deliver, reason=-, "
        r"folder=INBOX, register=-, status=delivered \(lmtp 250\)",
        line,
    ), line
