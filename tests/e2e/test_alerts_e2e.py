"""Priority messages and compliance alerts through the running server: a priority sender's
message over SMTP notifies the clerk (IMAP INBOX) and the alert webhook (a loopback HTTP
server); with no check, the compliance job 16 minutes later mails the leaders once."""

from __future__ import annotations

import asyncio
import email
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select

from mailsvc.checks.alerts import compliance_alerts_job
from mailsvc.checks.compliance import evaluate
from mailsvc.checks.policy import load_checking_policy
from mailsvc.cli import main
from mailsvc.db.models import MessageRecord
from mailsvc.jobs.context import JobContext
from mailsvc.time import VIETNAM
from tests.checks.builders import write_policies
from tests.e2e.conftest import (
    DOMAIN,
    PASSWORD,
    RunningServer,
    prepare_home,
    running_server,
    seed,
    wait_for,
)
from tests.e2e.test_signed_documents_e2e import trust_sample_agency
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send
from tests.signatures.pki import AGENCY_DOMAIN, make_pdf, session_pki, signed_pdf
from tests.webhook_server import WebhookSink

CLERK = f"vanthu@{DOMAIN}"
LEADER = f"lanhdao@{DOMAIN}"
ADMIN = f"quantri@{DOMAIN}"
CHIEF = f"bithu@{DOMAIN}"  # member of the Standing Committee (Ban Thường vụ)
OUTSIDE_SENDER = f"vanthu@{AGENCY_DOMAIN}"


def personal_fingerprint() -> str:
    return session_pki().personal.cert.fingerprint(hashes.SHA256()).hex()


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with WebhookSink() as server:
        yield server


@pytest.fixture
async def server(
    service_home: Path, db_url: str, sink: WebhookSink
) -> AsyncIterator[RunningServer]:
    """The e2e server with a checking policy naming the priority senders and an alert
    webhook. No working days: no check window can fall due, whatever the hour the test
    runs; priority messages count every day."""
    home = service_home
    prepare_home(home, db_url)
    write_policies(
        home,
        working_days=[],
        priority={
            "max_delay_minutes": 15,
            "senders": [CHIEF],
            "certificates": [personal_fingerprint()],
        },
    )
    with (home / "mailsvc.toml").open("a", encoding="utf-8") as config:
        config.write(f'\n[alerts]\nwebhook_url = "{sink.url}"\ntimeout_seconds = 5\n')
    seed(db_url)
    async with running_server(home) as running:
        yield running


def job_context(server: RunningServer, now: datetime) -> JobContext:
    app = server.app
    return JobContext(settings=app.settings, sessions=app.sessions, mailer=app.mailer, now=now)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def alert_mails(server: RunningServer, user: str) -> list[EmailMessage]:
    return [m for m in map(parse, fetch_inbox(server, user)) if m["X-Mailsvc-Alert"]]


def arrival_of(server: RunningServer, sender: str) -> datetime:
    with server.sessions() as session:
        record = session.scalars(
            select(MessageRecord).where(
                MessageRecord.recipient == CLERK, MessageRecord.mail_from == sender
            )
        ).one()
        return record.received_at


async def test_priority_message_notifies_clerk_then_late_check_alerts_leaders_once(
    server: RunningServer, sink: WebhookSink
) -> None:
    server.add_mailbox(CLERK)
    server.add_mailbox(LEADER, role="leader")
    server.add_mailbox(ADMIN, role="admin")
    server.add_mailbox(CHIEF, role="official")
    msg = make_message(CHIEF, CLERK, subject="Triệu tập họp Ban Thường vụ")
    refused = await asyncio.to_thread(
        send, server, msg, CHIEF, [CLERK], "submission", (CHIEF, PASSWORD)
    )
    assert refused == {}

    # The arrival: the webhook at once ("tin nhắn"), and a notice mailed to the clerk.
    await wait_for(lambda: sink.kinds() == ["priority-arrived"])
    arrived = await asyncio.to_thread(arrival_of, server, CHIEF)
    notice: dict[str, Any] = sink.received[0]
    assert notice["mailbox"] == CLERK and notice["recipients"] == [CLERK]
    assert notice["details"]["sender"] == CHIEF
    assert notice["text"].startswith(f"Tin nhắn: hộp thư {CLERK} vừa nhận thư ưu tiên")
    await wait_for(lambda: ("alert-priority-arrived", CLERK) in server.app.mailer.sent)

    # Nobody checked the mailbox: 16 minutes later the job alerts leaders and admins...
    summary = await compliance_alerts_job(job_context(server, arrived + timedelta(minutes=16)))
    assert summary == "compliance alerts: 1 raised (0 window-missed, 1 priority-late)"
    assert sink.kinds() == ["priority-arrived", "priority-late"]
    late = sink.received[1]
    assert late["recipients"] == [LEADER, ADMIN] and late["details"]["checked_at"] is None
    # ... once: the job runs again (every few minutes) and raises nothing new.
    for minutes in (16, 20, 45):
        summary = await compliance_alerts_job(
            job_context(server, arrived + timedelta(minutes=minutes))
        )
        assert summary.startswith("compliance alerts: 0 raised")
    assert len(sink.received) == 2
    # Queued by the job; the outbound queue delivers them (its passes paced under load).
    await wait_for(
        lambda: (
            {("alert-priority-late", boss) for boss in (LEADER, ADMIN)}
            <= set(server.app.mailer.sent)
        )
    )

    for boss in (LEADER, ADMIN):
        [alert] = await asyncio.to_thread(alert_mails, server, boss)
        assert alert["X-Mailsvc-Alert"].startswith("priority-late;")
        assert alert["Auto-Submitted"] == "auto-generated"
        assert str(alert["Subject"]).startswith(f"[Cảnh báo] Thư ưu tiên của {CHIEF}")
        body = alert.get_content()
        assert "CẢNH BÁO: THƯ ƯU TIÊN CHƯA ĐƯỢC KIỂM TRA KỊP THỜI" in body
        assert "Lần kiểm tra đầu tiên sau khi thư đến: chưa có" in body
        # Leaders read dates as dd/mm/yyyy (the webhook's JSON keeps ISO 8601 +07:00).
        assert re.search(r"\d\d:\d\d \d\d/\d\d/20\d\d", body) and "+07:00" not in body
    sent = server.app.mailer.sent
    assert sorted(sent) == sorted(
        [
            ("alert-priority-arrived", CLERK),
            ("alert-priority-late", LEADER),
            ("alert-priority-late", ADMIN),
        ]
    )

    # The clerk's INBOX (read last: reading it is a check): the message and the notice.
    inbox = [parse(raw) for raw in await asyncio.to_thread(fetch_inbox, server, CLERK)]
    assert [str(m["Subject"]) for m in inbox if not m["X-Mailsvc-Alert"]] == [
        "Triệu tập họp Ban Thường vụ"
    ]
    [tin_nhan] = [m for m in inbox if m["X-Mailsvc-Alert"]]
    assert tin_nhan["X-Mailsvc-Alert"].startswith("priority-arrived;")
    text = tin_nhan.get_content()
    assert (
        "TIN NHẮN: THƯ ƯU TIÊN VỪA ĐẾN" in text and "Tiêu đề: Triệu tập họp Ban Thường vụ" in text
    )

    # The report over the server's own database shows the message and its delay.
    day = arrived.astimezone(VIETNAM).date().isoformat()
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["--home", str(server.home), "checks", "report", "--from", day, "--to", day, "--json"],
    )
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert (report["mailbox"], report["working_day"]) == (CLERK, False)
    [priority] = report["priority_messages"]
    assert priority["sender"] == CHIEF and priority["message_id"] == msg["Message-ID"]
    # Pending until a check is recorded (the event-log reader records the IMAP read above).
    assert priority["status"] in ("pending", "on-time")


async def test_document_signed_with_a_priority_certificate_is_priority(
    server: RunningServer, sink: WebhookSink
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Kết luận số 12-KL/TU"), pki.personal, pki.organisation)
    msg = make_message(OUTSIDE_SENDER, CLERK, subject="Kết luận của Ban Thường vụ")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="12-KL-TU.pdf")
    assert await asyncio.to_thread(send, server, msg, OUTSIDE_SENDER, [CLERK]) == {}

    await wait_for(lambda: sink.kinds() == ["priority-arrived"])
    assert sink.received[0]["details"]["sender"] == OUTSIDE_SENDER
    arrived = await asyncio.to_thread(arrival_of, server, OUTSIDE_SENDER)
    policy = load_checking_policy(server.home / "policies" / "checking.yaml")
    with server.sessions() as session:
        [day] = evaluate(
            session,
            policy,
            arrived.astimezone(policy.zone).date(),
            arrived.astimezone(policy.zone).date(),
            now=arrived + timedelta(minutes=1),
        )
    [message] = day.priority
    assert (message.sender, message.status) == (OUTSIDE_SENDER, "pending")
