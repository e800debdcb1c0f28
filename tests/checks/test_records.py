"""The event-log reader on crafted Dovecot lines (same format as a real events.log):
partial lines, rotation, truncation, restarts, service sessions, reordered events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.models import ImapSession, LogCursor, MailboxCheck
from mailsvc.checks.records import (
    CURSOR_NAME,
    CheckRecorder,
    EventLogReader,
    purge_checks,
    purge_checks_job,
)
from mailsvc.cli import main
from mailsvc.config import ChecksSection, DatabaseSection, Settings
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker, reading
from mailsvc.jobs.context import JobContext
from tests.e2e.conftest import wait_for
from tests.transactions import count_transactions

USER = "annv.stttt@so-tp.gov.vn"
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S ")


def _event(name: str, at: datetime, fields: dict[str, object]) -> str:
    data = {
        "event": name,
        "hostname": "mail",
        "start_time": (at - timedelta(milliseconds=3)).isoformat().replace("+00:00", "Z"),
        "end_time": at.isoformat().replace("+00:00", "Z"),
        "fields": fields,
    }
    return f"{_stamp(at)}stats: Info: {json.dumps(data, separators=(',', ':'))}\n"


def login(
    session: str,
    at: datetime,
    *,
    user: str = USER,
    ip: str = "10.1.2.3",
    success: bool = True,
    master: str = "",
    client_id: str = "",
) -> str:
    fields: dict[str, object] = {"service": "imap", "session": session, "remote_ip": ip}
    fields["user"] = user
    if success:
        fields["success"] = "yes"
    if master:
        fields["master_user"] = master
        fields["original_user"] = master
    if client_id:
        fields["client_id"] = client_id
    return _event("auth_request_finished", at, fields)


def command(
    session: str,
    at: datetime,
    name: str = "SELECT",
    args: str = "INBOX",
    *,
    user: str = USER,
    ok: bool = True,
) -> str:
    fields: dict[str, object] = {
        "user": user,
        "session": session,
        "remote_ip": "10.1.2.3",
        "cmd_name": name,
        "cmd_args": args,
        "tagged_reply_state": "OK" if ok else "NO",
    }
    if name in ("SELECT", "EXAMINE"):
        fields["mailbox"] = args
    return _event("imap_command_finished", at, fields)


def noise(at: datetime, text: str = "imap-login: Info: Login: user=<x>, session=<s>") -> str:
    return f"{_stamp(at)}{text}\n"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "dovecot" / "events.log"


def append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def checks(sessions: sessionmaker[Session]) -> list[MailboxCheck]:
    with sessions() as db:
        return list(db.scalars(select(MailboxCheck).order_by(MailboxCheck.at)))


def reader(
    sessions: sessionmaker[Session], path: Path, *, grace: float = 30.0, batch_bytes: int = 65536
) -> EventLogReader:
    return EventLogReader(sessions, path, grace=grace, batch_bytes=batch_bytes)


def test_login_and_select_make_one_check(sessions: sessionmaker[Session], log_path: Path) -> None:
    append(
        log_path,
        noise(T0),
        login("S1", T0, client_id='"name" "Thunderbird" "version" "128.5.0esr"'),
        command("S1", T0 + timedelta(seconds=1)),
        command("S1", T0 + timedelta(seconds=2), "SELECT", "Sent"),
        command("S1", T0 + timedelta(seconds=3), "SELECT", "INBOX"),  # same session: no 2nd
    )
    r = reader(sessions, log_path)
    assert r.poll() == 1
    [check] = checks(sessions)
    assert (check.mailbox, check.session, check.remote_ip, check.client, check.source) == (
        USER,
        "S1",
        "10.1.2.3",
        "Thunderbird 128.5.0esr",
        "imap",
    )
    assert check.at == T0 + timedelta(seconds=1)
    with sessions() as db:
        row = db.get(ImapSession, "S1")
        assert row is not None and row.login_at == T0 and row.master_user == ""
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == log_path.stat().st_size
        st = log_path.stat()
        assert cursor.file_id == f"{st.st_dev}:{st.st_ino}"
    assert r.poll() == 0


def test_examine_counts_other_folders_and_failures_do_not(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(
        log_path,
        login("E1", T0),
        command("E1", T0, "EXAMINE", "INBOX"),
        login("E2", T0),
        command("E2", T0, "SELECT", "Junk"),
        command("E2", T0, "EXAMINE", "Sent"),
        login("E3", T0),
        command("E3", T0, "SELECT", "INBOX", ok=False),
        login("E4", T0, success=False),
        command("E4", T0, "SELECT", "inbox"),  # never logged in: waits (not a check yet)
        login("E5", T0),
        command("E5", T0, "SELECT", "inbox"),  # INBOX is case-insensitive
    )
    r = reader(sessions, log_path)
    assert r.poll() == 2
    assert sorted(c.session for c in checks(sessions)) == ["E1", "E5"]
    with sessions() as db:
        assert db.get(ImapSession, "E4") is None  # a failed login is no session


def test_service_sessions_are_not_checks(sessions: sessionmaker[Session], log_path: Path) -> None:
    append(
        log_path,
        login("M1", T0, master="mailsvc"),
        command("M1", T0, "SELECT", "INBOX"),
        login("U1", T0),
        command("U1", T0, "SELECT", "INBOX"),
    )
    assert reader(sessions, log_path).poll() == 1
    assert [c.session for c in checks(sessions)] == ["U1"]
    with sessions() as db:
        service = db.get(ImapSession, "M1")
        assert service is not None and service.master_user == "mailsvc"


def test_partial_last_line_is_left_for_the_next_poll(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    line = command("P1", T0)
    append(log_path, login("P1", T0), line[:40])
    r = reader(sessions, log_path)
    assert r.poll() == 0
    with sessions() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == len(login("P1", T0).encode())
    append(log_path, line[40:])
    assert r.poll() == 1


def test_restart_from_cursor_loses_nothing_and_counts_nothing_twice(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    for i in range(5):
        append(log_path, login(f"R{i}", T0 + timedelta(minutes=i)))
        append(log_path, command(f"R{i}", T0 + timedelta(minutes=i, seconds=1)))
    first = reader(sessions, log_path)
    assert first.poll() == 5
    first.close()
    for i in range(5, 8):
        append(log_path, login(f"R{i}", T0 + timedelta(minutes=i)))
        append(log_path, command(f"R{i}", T0 + timedelta(minutes=i, seconds=1)))
    second = reader(sessions, log_path)  # a new process: only the cursor in the database
    assert second.poll() == 3
    assert [c.session for c in checks(sessions)] == [f"R{i}" for i in range(8)]
    # Lines read again (a cursor behind the rows, as after waiting events) count once.
    with sessions.begin() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None
        cursor.offset = 0
    assert reader(sessions, log_path).poll() == 0
    assert len(checks(sessions)) == 8


def test_rotation_finishes_the_old_file_then_reads_the_new(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, login("A1", T0), command("A1", T0))
    r = reader(sessions, log_path)
    assert r.poll() == 1
    rotated = log_path.with_name("events.log.1")
    os.rename(log_path, rotated)
    # Dovecot keeps writing to the renamed file until it reopens its log...
    append(rotated, login("A2", T0), command("A2", T0))
    append(log_path, "")  # logrotate's `create`: a new, empty file
    assert r.poll() == 1
    # ...then writes the new one.
    append(rotated, login("A3", T0), command("A3", T0))
    append(log_path, login("B1", T0), command("B1", T0))
    assert r.poll() == 2
    assert sorted(c.session for c in checks(sessions)) == ["A1", "A2", "A3", "B1"]
    with sessions() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        st = log_path.stat()
        assert cursor is not None and cursor.file_id == f"{st.st_dev}:{st.st_ino}"
        assert cursor.offset == st.st_size


def test_restart_after_rotation_finds_the_rotated_file(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, login("C1", T0), command("C1", T0))
    first = reader(sessions, log_path)
    assert first.poll() == 1
    first.close()
    rotated = log_path.with_name("events.log.1")
    os.rename(log_path, rotated)
    append(rotated, login("C2", T0), command("C2", T0))  # written while we were down
    append(log_path, login("D1", T0), command("D1", T0))
    assert reader(sessions, log_path).poll() == 2
    assert sorted(c.session for c in checks(sessions)) == ["C1", "C2", "D1"]


def test_truncated_file_is_read_from_the_start(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, noise(T0) * 20, login("T1", T0), command("T1", T0))
    r = reader(sessions, log_path)
    assert r.poll() == 1
    with log_path.open("w", encoding="utf-8") as fh:  # copytruncate
        fh.write(login("T2", T0) + command("T2", T0))
    assert r.poll() == 1
    assert sorted(c.session for c in checks(sessions)) == ["T1", "T2"]


def test_select_logged_before_its_login_waits_for_it(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    # Logins come from the auth process, SELECTs from imap processes: under load the log
    # can hold them in either order.
    append(log_path, command("O1", T0 + timedelta(seconds=1)), command("O2", T0))
    r = reader(sessions, log_path)
    assert r.poll() == 0 and r.waiting == 2
    with sessions() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == 0  # a restart would read them again
    append(log_path, login("O1", T0), login("O2", T0, master="mailsvc"))
    assert r.poll() == 1
    assert [c.session for c in checks(sessions)] == ["O1"]
    assert r.waiting == 0
    with sessions() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == log_path.stat().st_size


def test_a_select_whose_login_never_comes_is_recorded_after_the_grace(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, command("G1", T0), command("G1", T0, "ID", '("name" "K-9 Mail")'))
    assert reader(sessions, log_path, grace=0).poll() == 1
    [check] = checks(sessions)
    assert (check.session, check.mailbox, check.client) == ("G1", USER, "K-9 Mail")


def test_an_id_after_login_names_the_client(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, login("I1", T0), command("I1", T0))
    r = reader(sessions, log_path)
    assert r.poll() == 1
    assert checks(sessions)[0].client == ""
    append(log_path, command("I1", T0, "ID", '("name" "Microsoft Outlook" "version" "16.0")'))
    assert r.poll() == 0
    assert checks(sessions)[0].client == "Microsoft Outlook 16.0"
    with sessions() as db:
        row = db.get(ImapSession, "I1")
        assert row is not None and row.client == "Microsoft Outlook 16.0"


def test_client_text_cannot_forge_an_event(sessions: sessionmaker[Session], log_path: Path) -> None:
    forged = login("F1", T0).split(" ", 1)[1].strip()  # "stats: Info: {...}"
    append(
        log_path,
        noise(T0, f"imap-login: Info: Disconnected (auth failed): user=<x {forged}>"),
        noise(T0, "imap-login: Info: " + command("F1", T0).split(" ", 1)[1].strip()),
    )
    r = reader(sessions, log_path, grace=0)
    assert r.poll() == 0
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(ImapSession)) == 0


def _delivered(db: Session, n: int, at: datetime, recipient: str = USER) -> None:
    for i in range(n):
        db.add(
            MessageRecord(
                queue_id=f"Q{at:%H%M%S}{i}",
                message_key=f"k{at.timestamp()}-{i}-{recipient}",
                sha256="0" * 64,
                size=100,
                recipient=recipient,
                direction="inbound",
                action="deliver",
                state="delivered",
                delivered_at=at,
            )
        )


def test_new_messages_count_deliveries_since_the_previous_check(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    with sessions.begin() as db:
        _delivered(db, 2, T0 - timedelta(hours=1))
        _delivered(db, 1, T0 - timedelta(hours=1), recipient="other@so-tp.gov.vn")
        _delivered(db, 3, T0 + timedelta(minutes=30))
        db.add(  # accepted but not yet delivered: not seen
            MessageRecord(
                queue_id="QS",
                message_key="stored",
                sha256="0" * 64,
                size=1,
                recipient=USER,
                direction="inbound",
                action="deliver",
                state="stored",
            )
        )
    append(
        log_path,
        login("N1", T0),
        command("N1", T0),
        login("N2", T0 + timedelta(hours=1)),
        command("N2", T0 + timedelta(hours=1), "EXAMINE"),
        login("N3", T0 + timedelta(hours=2)),
        command("N3", T0 + timedelta(hours=2)),
    )
    assert reader(sessions, log_path).poll() == 3
    assert [c.new_messages for c in checks(sessions)] == [2, 3, 0]


def test_burst_in_small_batches(sessions: sessionmaker[Session], log_path: Path) -> None:
    lines = []
    for i in range(300):
        at = T0 + timedelta(seconds=i)
        lines += [login(f"B{i:04d}", at), noise(at), command(f"B{i:04d}", at)]
    append(log_path, *lines)
    r = reader(sessions, log_path, batch_bytes=4096)  # many transactions, lines split
    assert r.poll() == 300
    assert len({c.session for c in checks(sessions)}) == 300


async def test_purge_removes_rows_older_than_retention(
    sessions: sessionmaker[Session], log_path: Path, tmp_path: Path, db_url: str
) -> None:
    now = datetime(2031, 1, 10, tzinfo=UTC)
    append(
        log_path,
        login("OLD", now - timedelta(days=40)),
        command("OLD", now - timedelta(days=40)),
        login("NEW", now - timedelta(days=5)),
        command("NEW", now - timedelta(days=5)),
    )
    assert reader(sessions, log_path).poll() == 2
    with sessions.begin() as db:
        assert purge_checks(db, now - timedelta(days=100)) == 0
    settings = Settings(
        home=tmp_path, database=DatabaseSection(url=db_url), checks=ChecksSection(retention_days=30)
    )
    ctx = JobContext(settings=settings, sessions=sessions, mailer=None, now=now)
    summary = await purge_checks_job(ctx)
    assert summary == "purged 2 check and IMAP session rows older than 30 days"
    assert [c.session for c in checks(sessions)] == ["NEW"]
    with sessions() as db:
        assert db.get(ImapSession, "OLD") is None and db.get(ImapSession, "NEW") is not None


def test_cli_lists_checks_in_local_time(
    sessions: sessionmaker[Session], log_path: Path, tmp_path: Path, db_url: str
) -> None:
    append(
        log_path,
        login("L1", T0, ip="10.9.8.7", client_id='"name" "Thunderbird" "version" "128.5"'),
        command("L1", T0),
        login("L2", T0 + timedelta(days=1), user="other@so-tp.gov.vn"),
        command("L2", T0 + timedelta(days=1), user="other@so-tp.gov.vn"),
    )
    assert reader(sessions, log_path).poll() == 2
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailsvc.toml").write_text(
        f'[server]\ndomain = "so-tp.gov.vn"\n[database]\nurl = {json.dumps(db_url)}\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["--home", str(home), "checks", "list"]
    table = runner.invoke(main, [*base, "--mailbox", USER.upper()])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == [
        "TIME",
        "MAILBOX",
        "FROM",
        "CLIENT",
        "NEW",
        "SOURCE",
    ]
    assert "2026-11-23T08:00:00+07:00" in table.output
    assert "10.9.8.7" in table.output and "Thunderbird 128.5" in table.output
    assert "other@" not in table.output
    day = runner.invoke(main, [*base, "--from", "2026-11-24", "--to", "2026-11-24", "--json"])
    assert day.exit_code == 0, day.output
    assert [(c["session"], c["at"]) for c in json.loads(day.output)] == [
        ("L2", "2026-11-24T08:00:00+07:00")
    ]
    bad = runner.invoke(main, [*base, "--from", "2026-11-25", "--to", "2026-11-24"])
    assert bad.exit_code == 1 and "--from is after --to" in bad.output


async def test_the_recorder_logs_a_failed_poll_and_keeps_going(
    sessions: sessionmaker[Session], log_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.makedirs(log_path)  # opening the log fails until it is a file
    recorder = CheckRecorder(reader(sessions, log_path), interval=0.01)
    recorder.start()
    try:
        await wait_for(lambda: "checks: reading" in caplog.text)
        os.rmdir(log_path)
        append(log_path, login("K1", T0), command("K1", T0))
        await wait_for(lambda: len(checks(sessions)) == 1)
    finally:
        await recorder.stop()
    assert "IsADirectoryError" in caplog.text


def test_lines_without_events_open_no_write_transaction(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    """Deliveries and disconnects fill the log between checks: reading past them changes
    nothing in the database, so no transaction takes the write lock for them."""
    seen = count_transactions(sessions.kw["bind"])
    append(log_path, noise(T0) * 50)
    r = reader(sessions, log_path)
    assert r.poll() == 0
    assert r.poll() == 0  # nothing new
    assert seen.writes == 0 and r.offset == log_path.stat().st_size
    # Stopped here, a new reader would read the noise again: nothing to count twice.
    append(log_path, login("N1", T0), command("N1", T0))
    assert r.poll() == 1 and seen.writes == 1
    with reading(sessions) as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == log_path.stat().st_size
    # Noise after the last event: its cursor is saved on flush (when the recorder stops).
    append(log_path, noise(T0) * 5)
    assert r.poll() == 0 and seen.writes == 1
    r.flush()
    r.flush()  # nothing more to save
    assert seen.writes == 2
    with sessions() as db:
        cursor = db.get(LogCursor, CURSOR_NAME)
        assert cursor is not None and cursor.offset == log_path.stat().st_size
    assert [c.session for c in checks(sessions)] == ["N1"]


async def test_an_idle_recorder_opens_no_write_transaction(
    sessions: sessionmaker[Session], log_path: Path
) -> None:
    append(log_path, login("I1", T0), command("I1", T0))
    r = reader(sessions, log_path)
    recorder = CheckRecorder(r, interval=0.01)
    recorder.start()
    try:
        await wait_for(lambda: len(checks(sessions)) == 1)
        seen = count_transactions(sessions.kw["bind"])
        first_size = len((login("I1", T0) + command("I1", T0)).encode())
        for n in range(1, 6):  # polls that find nothing, or only lines that are no events
            append(log_path, noise(T0))
            size = first_size + n * len(noise(T0).encode())
            await wait_for(lambda size=size: r.offset == size)
        assert seen.writes == 0
    finally:
        await recorder.stop()
