"""Jobs in the running server: quarterly statistics and overdue reminders reach the
leaders' (and assignees', clerks') real IMAP INBOX, fired by the server's scheduler,
by the server's runner, and by `mailsvc jobs run` in another process context."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from click.testing import CliRunner, Result
from sqlalchemy import select, update

from mailsvc.cli import main
from mailsvc.db.models import Agency, Mailbox
from mailsvc.jobs.models import JobRun, OverdueReminder
from mailsvc.jobs.scheduler import CLUSTER_STORE
from mailsvc.register import workflow
from mailsvc.register.models import RegisterDocument
from mailsvc.register.registers import ensure_register
from mailsvc.register.registration import register_document
from mailsvc.register.statistics import Quarter, previous_quarter
from mailsvc.register.statuses import DocumentStatus
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.time import VIETNAM
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer, wait_for
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send
from tests.register.builders import document

LEADER = f"lanhdao@{DOMAIN}"
CLERK = f"vanthu@{DOMAIN}"
OFFICIAL = f"annv.stttt@{DOMAIN}"
AGENCY_CODE = "000.00.31.H56"  # the local agency of the e2e server fixture


def seed_people(server: RunningServer) -> int:
    server.add_mailbox(LEADER, role="leader")
    server.add_mailbox(CLERK, role="clerk")
    server.add_mailbox(OFFICIAL, role="official")
    with server.app.sessions.begin() as session:
        agency = session.scalars(select(Agency).where(Agency.code == AGENCY_CODE)).one()
        session.execute(update(Mailbox).values(agency_id=agency.id))
        session.execute(
            update(Mailbox).where(Mailbox.address == LEADER).values(full_name="Trần Thị Bình")
        )
        return agency.id


def seed_document(
    server: RunningServer, agency_id: int, received_at: datetime, **kw: object
) -> int:
    with server.app.sessions.begin() as session:
        register = ensure_register(
            session, AGENCY_CODE, "Sổ đăng ký văn bản đến", agency_id=agency_id
        )
        return register_document(
            session, register, document(received_at=received_at, recipient=CLERK, **kw)
        ).document_id


def change(server: RunningServer, doc_id: int, status: DocumentStatus, **kw: object) -> None:
    with server.app.sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        if status is DocumentStatus.ASSIGNED:
            workflow.assign(
                session, row, str(kw["to"]), actor="cli:vanthu", deadline=kw["deadline"]
            )  # type: ignore[arg-type]
        else:
            workflow.set_status(session, row, status, actor="cli:vanthu", reason="Xong")


def inbox(server: RunningServer, user: str) -> list[EmailMessage]:
    return [
        message_from_bytes(raw, policy=default_policy)  # type: ignore[misc]
        for raw in fetch_inbox(server, user)
    ]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def quarter_start(q: Quarter) -> datetime:
    return datetime.combine(q.start, time.min, tzinfo=VIETNAM)


async def test_quarterly_statistics_reach_the_leader_inbox(server: RunningServer) -> None:
    agency_id = seed_people(server)
    now = datetime.now(VIETNAM)
    # Report as the scheduler would on the first day of next quarter, 07:00: it covers
    # the current quarter, where these documents and this submission fall.
    this_quarter = previous_quarter(now + timedelta(days=93))
    report_at = datetime.combine(this_quarter.end, time(7, 0), tzinfo=VIETNAM)
    received = max(now - timedelta(minutes=5), quarter_start(this_quarter))
    yesterday = now.date() - timedelta(days=1)
    seed_document(server, agency_id, received)  # registered
    overdue = seed_document(server, agency_id, received)
    change(server, overdue, DocumentStatus.ASSIGNED, to=OFFICIAL, deadline=yesterday)
    finished = seed_document(server, agency_id, received)
    change(server, finished, DocumentStatus.DONE)
    seed_document(server, agency_id, received, signature_outcome=DocumentOutcome.REFERENCE_ONLY)
    seed_document(server, agency_id, quarter_start(this_quarter) - timedelta(days=2))  # earlier
    msg = make_message(OFFICIAL, CLERK, subject="Lịch họp giao ban")
    await asyncio.to_thread(
        send, server, msg, OFFICIAL, [CLERK], "submission", (OFFICIAL, PASSWORD)
    )

    result = await server.app.jobs.run_now("quarterly-statistics", now=report_at)

    assert result.outcome == "ok", result.summary
    assert result.summary == f"{this_quarter.label}: 1 agencies, 1 reports sent"
    [report] = await asyncio.to_thread(inbox, server, LEADER)
    assert report["Subject"] == (
        f"Báo cáo thống kê văn bản {this_quarter.label} - Sở Thông tin và Truyền thông"
    )
    assert report["Auto-Submitted"] == "auto-generated"
    text = text_of(report)
    assert "Kính gửi: Lãnh đạo Sở Thông tin và Truyền thông" in text
    assert "Tổng số văn bản đến: 4" in text
    for line in ("Đã đến: 1", "Đã tiếp nhận: 1", "Đã chuyển xử lý: 1", "Đã hoàn thành: 1"):
        assert f"  - {line}\n" in text
    assert "quá hạn xử lý tính đến ngày lập báo cáo: 1" in text
    # A plain e-mail is not a document: văn bản đi counts documents, e-mails separately.
    assert "Số văn bản đi (thư gửi đi có kèm văn bản điện tử): 0" in text
    assert "Số thư điện tử gửi đi (kể cả thư không kèm văn bản): 1" in text
    assert "Số lượt gửi tới người nhận: 1" in text
    assert f"lúc 07:00 {report_at:%d/%m/%Y}" in text  # dates as leaders read them
    assert f"từ ngày {this_quarter.start:%d/%m/%Y}" in text
    # The clerk and the official are not leaders: no report for them.
    assert [m["Subject"] for m in await asyncio.to_thread(inbox, server, CLERK)] == [
        "Lịch họp giao ban"
    ]
    with server.app.sessions() as session:
        [run] = session.scalars(select(JobRun).where(JobRun.job == "quarterly-statistics")).all()
        assert run.manual and run.outcome == "ok" and run.scheduled_for == report_at


async def test_overdue_reminders_fired_by_the_server_scheduler_once_a_day(
    server: RunningServer,
) -> None:
    agency_id = seed_people(server)
    now = datetime.now(VIETNAM)
    today = now.date()
    assigned = seed_document(server, agency_id, now - timedelta(days=20), abstract="V/v A")
    change(server, assigned, DocumentStatus.ASSIGNED, to=OFFICIAL, deadline=today - timedelta(3))
    unassigned = seed_document(
        server, agency_id, now - timedelta(days=20), abstract="V/v B", deadline=today - timedelta(1)
    )
    done = seed_document(server, agency_id, now - timedelta(days=20), abstract="V/v C")
    change(server, done, DocumentStatus.ASSIGNED, to=OFFICIAL, deadline=today - timedelta(2))
    change(server, done, DocumentStatus.DONE)
    seed_document(server, agency_id, now, abstract="V/v D", deadline=today + timedelta(1))

    # Make the stored daily job due now; the running server's scheduler fires it.
    scheduler = server.app.scheduler
    assert scheduler is not None and scheduler.scheduler is not None
    due = datetime.now(VIETNAM).replace(microsecond=0)
    scheduler.scheduler.modify_job("overdue-reminders", CLUSTER_STORE, next_run_time=due)

    def finished() -> list[JobRun]:
        with server.app.sessions() as session:
            return list(
                session.scalars(
                    select(JobRun).where(
                        JobRun.job == "overdue-reminders", JobRun.outcome != "running"
                    )
                )
            )

    await wait_for(lambda: bool(finished()), timeout=20)
    [run] = finished()
    assert (run.scheduled_for, run.manual, run.outcome) == (due, False, "ok")
    assert run.summary == f"{today.isoformat()}: 2 overdue entries, 3 reminders sent"
    # Queued by the job; the outbound queue delivers them (its passes paced under load).
    reminded = {LEADER, OFFICIAL, CLERK}
    await wait_for(lambda: reminded <= {rcpt for _, rcpt in server.app.mailer.sent})

    [to_leader] = await asyncio.to_thread(inbox, server, LEADER)
    leader_text = text_of(to_leader)
    assert to_leader["Subject"] == f"[Nhắc việc] 2 văn bản đến đã quá hạn xử lý ({today})"
    assert "Kính gửi: Đồng chí Trần Thị Bình," in leader_text
    assert "V/v A" in leader_text and "V/v B" in leader_text and "V/v C" not in leader_text
    assert "quá hạn 3 ngày" in leader_text and "kiểm tra, đôn đốc" in leader_text
    [to_official] = await asyncio.to_thread(inbox, server, OFFICIAL)
    assert "V/v A" in text_of(to_official) and "V/v B" not in text_of(to_official)
    assert "khẩn trương xử lý" in text_of(to_official)
    assert f"Kính gửi: {OFFICIAL}," in text_of(to_official)
    [to_clerk] = await asyncio.to_thread(inbox, server, CLERK)
    assert "V/v B" in text_of(to_clerk) and "chưa phân công" in text_of(to_clerk)

    # Again the same day: nothing new (one reminder per entry per day).
    again = await server.app.jobs.run_now("overdue-reminders")
    assert again.summary == f"{today.isoformat()}: 0 overdue entries, 0 reminders sent"
    assert len(await asyncio.to_thread(inbox, server, LEADER)) == 1
    with server.app.sessions() as session:
        rows = session.scalars(select(OverdueReminder).order_by(OverdueReminder.id)).all()
        assert [(r.document_id, r.day) for r in rows] == [
            (assigned, today),
            (unassigned, today),
        ]
        assert rows[0].recipients == f"{OFFICIAL}, {LEADER}"


def cli(server: RunningServer, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(server.home), *args])


async def test_cli_jobs_run_delivers_through_the_running_dovecot(server: RunningServer) -> None:
    seed_people(server)
    result = await asyncio.to_thread(cli, server, "jobs", "run", "quarterly-statistics")
    assert result.exit_code == 0, (result.output, result.exception)
    last_quarter = previous_quarter(datetime.now(VIETNAM))
    assert f"quarterly-statistics: ok: {last_quarter.label}: 1 agencies, 1 reports sent" in (
        result.output
    )
    # The CLI queues the mail; the running server's outbound worker delivers it.
    # (it reads the queue every outbound.poll_seconds, 5 s by default)
    await wait_for(lambda: len(inbox(server, LEADER)) == 1, timeout=30)
    [report] = await asyncio.to_thread(inbox, server, LEADER)
    assert last_quarter.label in report["Subject"]
    assert f"từ ngày {last_quarter.start:%d/%m/%Y}" in text_of(report)
    listing = await asyncio.to_thread(cli, server, "jobs", "list")
    assert listing.exit_code == 0
    [line] = [x for x in listing.output.splitlines() if x.startswith("quarterly-statistics")]
    assert "/cli" in line and " ok " in line and "1 reports sent" in line
    assert date.today().isoformat()[:4] in line


async def test_missing_holiday_swaps_warn_in_healthz_log_and_admin_mail(
    server: RunningServer,
) -> None:
    """From 1 December 2027 the file lacks 2028's swaps: the job mails the admins on the
    1st (and Mondays), and only logs on other days."""
    admin = f"quantri@{DOMAIN}"
    server.add_mailbox(admin, role="admin")
    server.add_mailbox(CLERK, role="clerk")
    first = datetime(2027, 12, 1, 8, 0, tzinfo=VIETNAM)
    result = await server.app.jobs.run_now("holiday-swaps", now=first)
    assert result.outcome == "ok" and result.summary == (
        "holiday swaps for 2028 missing: mailed 1 admin(s)"
    )
    thursday = await server.app.jobs.run_now("holiday-swaps", now=first + timedelta(days=1))
    assert thursday.summary == "holiday swaps for 2028 missing: warned in the log"
    november = await server.app.jobs.run_now("holiday-swaps", now=first - timedelta(days=1))
    assert november.summary == "holiday swaps: nothing missing"
    [mail] = await asyncio.to_thread(inbox, server, admin)
    assert mail["Subject"] == "Chưa cập nhật lịch nghỉ hoán đổi năm 2028"
    text = text_of(mail)
    assert "Đến ngày 01/12/2027, lịch nghỉ hoán đổi năm 2028" in text and '"2028: []"' in text
    assert await asyncio.to_thread(inbox, server, CLERK) == []
