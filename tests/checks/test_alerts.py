"""Alerts from the compliance job and the priority follower: raised once per key, sent to a
real loopback webhook and a real command; a failing channel is logged and blocks nothing.
(Mail to leaders and the clerk goes through the running server: tests/e2e/test_alerts_e2e.py.)"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import unicodedata
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.app import PACKAGE_ROOT
from mailsvc.checks.alerts import (
    AlertNotifier,
    PriorityFollower,
    alert_key,
    compliance_alerts_job,
)
from mailsvc.checks.models import CheckAlert
from mailsvc.checks.policy import load_checking_policy
from mailsvc.config import AlertsSection, DatabaseSection, ServerSection, Settings
from mailsvc.db.models import Agency, MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.jobs.context import JobContext
from mailsvc.message import InboundMessage
from mailsvc.outcome import Accepted
from mailsvc.verdict import Action, Verdict
from tests.checks.builders import (
    ADMIN,
    CHIEF,
    CLERK,
    DOMAIN,
    LEADER,
    OFFICIAL,
    add_checks,
    add_mailbox,
    add_message,
    local,
    write_policies,
)
from tests.webhook_server import WebhookSink

# Appends its standard input (one JSON alert and a newline) to the file named in argv[1].
RECORDER = "import sys; open(sys.argv[1], 'a', encoding='utf-8').write(sys.stdin.read())"
LONG_AGO = local(2026, 1, 1)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with WebhookSink() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_policies(home, priority={"max_delay_minutes": 15, "senders": [CHIEF]})
    return home


def recorder_command(out: Path) -> str:
    return shlex.join([sys.executable, "-c", RECORDER, str(out)])


def context(
    home: Path,
    db_url: str,
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    webhook_url: str = "",
    command: str = "",
    timeout: float = 10.0,
) -> JobContext:
    settings = Settings(
        home=home,
        server=ServerSection(hostname=f"mail.{DOMAIN}", domain=DOMAIN),
        database=DatabaseSection(url=db_url),
        alerts=AlertsSection(webhook_url=webhook_url, command=command, timeout_seconds=timeout),
    )
    return JobContext(settings=settings, sessions=sessions, mailer=None, now=now)


def alerts(sessions: sessionmaker[Session]) -> list[CheckAlert]:
    with sessions() as session:
        return list(session.scalars(select(CheckAlert).order_by(CheckAlert.id)))


def command_lines(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def test_missed_window_raises_one_alert_however_often_the_job_runs(
    home: Path, db_url: str, sessions: sessionmaker[Session], sink: WebhookSink, tmp_path: Path
) -> None:
    add_mailbox(sessions, CLERK, "clerk", created_at=LONG_AGO)
    add_mailbox(sessions, LEADER, "leader")
    add_mailbox(sessions, ADMIN, "admin")
    add_mailbox(sessions, OFFICIAL, "official")  # neither tracked nor told
    out = tmp_path / "sms.jsonl"

    def ctx(now: datetime) -> JobContext:
        return context(
            home, db_url, sessions, now, webhook_url=sink.url, command=recorder_command(out)
        )

    # Monday 2026-11-16: no check before 09:00, so 07:30-08:30 was missed.
    summaries = [
        await compliance_alerts_job(ctx(local(2026, 11, 16, 9, minute))) for minute in (0, 5, 10)
    ]
    assert summaries[0] == "compliance alerts: 1 raised (1 window-missed, 0 priority-late)"
    assert summaries[1:] == ["compliance alerts: 0 raised (0 window-missed, 0 priority-late)"] * 2

    [hook] = sink.received
    assert sink.content_types == ["application/json; charset=utf-8"]
    assert hook["kind"] == "window-missed" and hook["mailbox"] == CLERK
    assert hook["key"] == f"window-missed:{CLERK}:2026-11-16:07:30-08:30"
    assert hook["raised_at"] == "2026-11-16T09:00:00+07:00"
    assert hook["recipients"] == [LEADER, ADMIN]  # the alert roles, by address
    assert "không được kiểm tra trong khung giờ" in hook["text"] and "07:30-08:30" in hook["text"]
    assert unicodedata.is_normalized("NFC", hook["text"])
    assert hook["details"]["window_end"] == "2026-11-16T08:30:00+07:00"
    assert command_lines(out) == [hook]

    [row] = alerts(sessions)
    assert (row.kind, row.mailbox, row.key) == ("window-missed", CLERK, hook["key"])
    delivery = row.details["delivery"]
    assert delivery["webhook"] == "ok: HTTP 204" and delivery["command"] == "ok"
    assert delivery["mail"] == {ADMIN: "skipped", LEADER: "skipped"}  # no mailer in this context

    # The next window: one more alert, the first one is not raised again.
    add_checks(sessions, CLERK, local(2026, 11, 16, 9, 30))
    await compliance_alerts_job(ctx(local(2026, 11, 16, 11, 45)))
    await compliance_alerts_job(ctx(local(2026, 11, 16, 11, 50)))
    assert sink.kinds() == ["window-missed", "window-missed"]
    assert sink.received[1]["details"]["window"] == "11:00-11:30"
    assert len(alerts(sessions)) == 2 and len(command_lines(out)) == 2


async def test_each_agency_hears_only_of_its_own_mailboxes(
    home: Path, db_url: str, sessions: sessionmaker[Session], sink: WebhookSink
) -> None:
    """A server hosting two agencies: a missed window of one agency's clerk is told to that
    agency's leaders and administrators and to the server's administrators (no agency),
    never to the other agency's."""
    with sessions.begin() as session:
        ours = Agency(code="000.00.31.H56", name="Sở TT&TT", domains=[DOMAIN])
        theirs = Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.example.vn"])
        session.add_all([ours, theirs])
        session.flush()
        ours_id, theirs_id = ours.id, theirs.id
    add_mailbox(sessions, CLERK, "clerk", created_at=LONG_AGO, agency_id=ours_id)
    add_mailbox(sessions, LEADER, "leader", agency_id=ours_id)
    add_mailbox(sessions, ADMIN, "admin")  # the server's operator
    add_mailbox(sessions, "lanhdao@stc.example.vn", "leader", agency_id=theirs_id)
    add_mailbox(sessions, "quantri@stc.example.vn", "admin", agency_id=theirs_id)
    ctx = context(home, db_url, sessions, local(2026, 11, 16, 9, 0), webhook_url=sink.url)
    await compliance_alerts_job(ctx)
    [hook] = sink.received
    assert hook["mailbox"] == CLERK and hook["recipients"] == [LEADER, ADMIN]


async def test_no_alert_before_the_mailbox_existed_or_older_than_a_day(
    home: Path, db_url: str, sessions: sessionmaker[Session], sink: WebhookSink
) -> None:
    add_mailbox(sessions, CLERK, "clerk", created_at=local(2026, 11, 16, 10))
    add_mailbox(sessions, f"vanthu2@{DOMAIN}", "clerk", created_at=LONG_AGO)
    add_mailbox(sessions, LEADER, "leader")
    await compliance_alerts_job(
        context(home, db_url, sessions, local(2026, 11, 16, 11, 45), webhook_url=sink.url)
    )
    # The new mailbox: only the window that started after it was created.
    assert sorted((h["mailbox"], h["details"]["window"]) for h in sink.received) == sorted(
        [
            (CLERK, "11:00-11:30"),
            (f"vanthu2@{DOMAIN}", "07:30-08:30"),
            (f"vanthu2@{DOMAIN}", "11:00-11:30"),
        ]
    )
    # Wednesday 09:00: Monday is more than a day ago; Tuesday's 07:30-08:30 ended 24.5 h ago.
    sink.received.clear()
    await compliance_alerts_job(
        context(home, db_url, sessions, local(2026, 11, 18, 9), webhook_url=sink.url)
    )
    assert sorted({h["details"]["date"] + " " + h["details"]["window"] for h in sink.received}) == [
        "2026-11-17 11:00-11:30",
        "2026-11-17 13:30-14:30",
        "2026-11-17 16:30-17:00",
        "2026-11-18 07:30-08:30",
    ]
    assert len(sink.received) == 8  # both mailboxes


async def test_priority_message_late_raises_once_and_on_time_never(
    home: Path, db_url: str, sessions: sessionmaker[Session], sink: WebhookSink
) -> None:
    add_mailbox(sessions, CLERK, "clerk", created_at=LONG_AGO)
    add_mailbox(sessions, LEADER, "leader")
    add_checks(sessions, CLERK, local(2026, 11, 16, 7, 45), local(2026, 11, 16, 10, 5))
    add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 16, 10))  # on time
    late = add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 16, 10, 20))
    add_checks(sessions, CLERK, local(2026, 11, 16, 10, 50))
    open_ = add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 16, 10, 55))

    def ctx(now: datetime) -> JobContext:
        return context(home, db_url, sessions, now, webhook_url=sink.url)

    assert await compliance_alerts_job(ctx(local(2026, 11, 16, 11))) == (
        "compliance alerts: 1 raised (0 window-missed, 1 priority-late)"
    )
    [hook] = sink.received
    assert hook["key"] == f"priority-late:{late}" and hook["kind"] == "priority-late"
    assert hook["details"]["checked_at"] == "2026-11-16T10:50:00+07:00"
    assert hook["details"]["deadline"] == "2026-11-16T10:35:00+07:00"
    assert "thư ưu tiên của " + CHIEF in hook["text"]
    await compliance_alerts_job(ctx(local(2026, 11, 16, 11, 5)))
    assert len(sink.received) == 1  # 10:55 is not due before 11:10
    await compliance_alerts_job(ctx(local(2026, 11, 16, 11, 11)))
    await compliance_alerts_job(ctx(local(2026, 11, 16, 11, 20)))
    assert [h["key"] for h in sink.received] == [f"priority-late:{late}", f"priority-late:{open_}"]
    assert sink.received[1]["details"]["checked_at"] is None


async def test_failing_webhook_and_command_are_logged_and_block_nothing(
    home: Path,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_mailbox(sessions, CLERK, "clerk", created_at=LONG_AGO)
    add_mailbox(sessions, LEADER, "leader")
    caplog.set_level(logging.WARNING, logger="mailsvc.checks.alerts")
    out = tmp_path / "sms.jsonl"
    async with WebhookSink(status=500) as failing:
        # Webhook answers 500; the command hangs past its budget; both are tried, both logged.
        summary = await compliance_alerts_job(
            context(
                home,
                db_url,
                sessions,
                local(2026, 11, 16, 9),
                webhook_url=failing.url,
                command="sleep 30",
                timeout=0.5,
            )
        )
        assert summary.startswith("compliance alerts: 1 raised")
        assert len(failing.received) == 1
    # Nobody listens on the webhook's port any more; the command does not exist; the
    # third channel (a working command) still runs.
    await compliance_alerts_job(
        context(
            home,
            db_url,
            sessions,
            local(2026, 11, 16, 11, 45),
            webhook_url=failing.url,
            command=recorder_command(out),
        )
    )
    await compliance_alerts_job(
        context(
            home,
            db_url,
            sessions,
            local(2026, 11, 16, 14, 45),
            command=str(tmp_path / "no-such-sms-gateway"),
        )
    )
    first, second, third = (row.details["delivery"] for row in alerts(sessions))
    assert first["webhook"] == "error: HTTP 500" and first["command"] == "error: timeout"
    assert second["webhook"] == "error: unreachable" and second["command"] == "ok"
    assert third["webhook"] == "not configured"
    assert third["command"] == "error: FileNotFoundError"
    assert [line["details"]["window"] for line in command_lines(out)] == ["11:00-11:30"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "webhook" in logged and "killed after 0.5 s" in logged and "cannot start" in logged


async def test_priority_arrival_notifies_the_tracked_recipient_once(
    home: Path, db_url: str, sessions: sessionmaker[Session], sink: WebhookSink
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_mailbox(sessions, OFFICIAL, "official")
    arrived = local(2026, 11, 16, 10, 0)
    ids = [
        add_message(sessions, sender=CHIEF, recipient=CLERK, at=arrived),
        add_message(sessions, sender=CHIEF, recipient=OFFICIAL, at=arrived),  # not tracked
    ]
    with sessions() as session:
        records = list(session.scalars(select(MessageRecord).where(MessageRecord.id.in_(ids))))
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = CHIEF, CLERK, "Triệu tập họp Ban Thường vụ"
    mail.set_content("Kính gửi.")
    msg = InboundMessage("Q1", CHIEF, (CLERK, OFFICIAL), mail.as_bytes(), arrived)
    settings = AlertsSection(webhook_url=sink.url)
    notifier = AlertNotifier(
        sessions,
        None,
        settings,
        PACKAGE_ROOT / "templates" / "alerts",
        hostname=f"mail.{DOMAIN}",
        domain=DOMAIN,
    )
    follower = PriorityFollower(
        sessions, notifier, load_checking_policy(home / "policies" / "checking.yaml")
    )
    verdict = Verdict("Q1", (), Action.DELIVER)
    accepted = Accepted("Q1", records=records)
    await follower.after_accept(msg, verdict, accepted)
    await follower.after_accept(msg, verdict, accepted)  # the same message again: no second notice
    await follower.after_accept(msg, Verdict("Q1", (), Action.QUARANTINE), accepted)
    [hook] = sink.received
    assert hook["kind"] == "priority-arrived" and hook["mailbox"] == CLERK
    assert hook["recipients"] == [CLERK]  # the clerk, by mail into the mailbox itself
    assert hook["text"].startswith("Tin nhắn: hộp thư " + CLERK)
    assert hook["details"]["deadline"] == "2026-11-16T10:15:00+07:00"
    assert "Triệu tập" not in json.dumps(hook, ensure_ascii=False)  # no subject leaves the network

    alert = notifier.priority_arrived(
        records[0], subject="Triệu tập họp", max_delay_minutes=15, now=arrived
    )
    assert "TIN NHẮN: THƯ ƯU TIÊN VỪA ĐẾN" in alert.body and "Tiêu đề: Triệu tập họp" in alert.body
    assert unicodedata.is_normalized("NFC", alert.body)


def test_alert_keys_fit_the_column() -> None:
    assert alert_key("window-missed", "a@b.vn", "2026-11-16", "07:30-08:30") == (
        "window-missed:a@b.vn:2026-11-16:07:30-08:30"
    )
    long_key = alert_key("window-missed", "x" * 300 + "@b.vn", "2026-11-16", "07:30-08:30")
    assert len(long_key) <= 255 and long_key.startswith("window-missed:sha256:")
