"""The checking policy, compliance per mailbox per day on crafted rows, and
`mailsvc checks report` (table, --json schema, self-contained --html)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.compliance import DayCompliance, evaluate
from mailsvc.checks.policy import CheckingPolicy, PriorityPolicy, load_checking_policy
from mailsvc.cli import main
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.errors import ConfigError
from tests.checks.builders import (
    CHIEF,
    CLERK,
    CLERK2,
    DOMAIN,
    FINGERPRINT,
    LEADER,
    OFFICIAL,
    add_checks,
    add_mailbox,
    add_message,
    local,
    write_policies,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "policies" / "checking.yaml"
MONDAY = date(2026, 11, 23)
SCHEMA_KEYS = {
    "mailbox",
    "date",
    "working_day",
    "holiday",
    "status",
    "compliant",
    "checks",
    "min_checks",
    "min_checks_status",
    "check_times",
    "windows",
    "windows_met",
    "windows_missed",
    "windows_pending",
    "priority_delays_minutes",
    "priority_messages",
}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def policy() -> CheckingPolicy:
    base = load_checking_policy(POLICY_FILE)
    return base.model_copy(
        update={"priority": PriorityPolicy(senders=(CHIEF,), certificates=(FINGERPRINT.upper(),))}
    )


def one(days: list[DayCompliance], mailbox: str, day: date) -> DayCompliance:
    [result] = [d for d in days if d.mailbox == mailbox and d.day == day]
    return result


# -- policy --------------------------------------------------------------------------------


def test_policy_file_working_days_holidays_and_windows() -> None:
    policy = load_checking_policy(POLICY_FILE)
    holidays = policy.holiday_dates()
    assert policy.is_working_day(MONDAY, holidays)
    assert not policy.is_working_day(date(2026, 11, 21), holidays)  # Saturday
    assert not policy.is_working_day(date(2026, 9, 2), holidays)  # Quốc khánh (fixed)
    assert not policy.is_working_day(date(2027, 1, 1), holidays)  # Tết Dương lịch, any year
    assert not policy.is_working_day(date(2026, 2, 17), holidays)  # Tết Bính Ngọ (range)
    assert not policy.is_working_day(date(2026, 4, 27), holidays)  # Giỗ Tổ, nghỉ bù
    assert policy.is_working_day(date(2025, 4, 26), holidays)  # Saturday worked (làm bù)
    assert [w.label for w in policy.windows] == [
        "07:30-08:30",
        "11:00-11:30",
        "13:30-14:30",
        "16:30-17:00",
    ]
    assert policy.min_checks_per_day == 4 and policy.priority.max_delay_minutes == 15
    start, end = policy.window_bounds(MONDAY, policy.windows[0])
    assert start.isoformat() == "2026-11-23T07:30:00+07:00" and end.hour == 8


def test_policy_is_editable_and_errors_name_file_and_key(tmp_path: Path) -> None:
    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    data["holidays"][2028] = ["2028-01-24..2028-01-30"]  # a new year's Tết
    data["priority"]["senders"] = ["BiThu@TinhUy.example.gov.vn"]
    path = tmp_path / "checking.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    policy = load_checking_policy(path)
    assert not policy.is_working_day(date(2028, 1, 26))
    assert policy.priority.is_priority("bithu@tinhuy.example.gov.vn")

    data["windows"][0]["end"] = "07:00"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"checking\.yaml: key 'windows\.0'"):
        load_checking_policy(path)
    data["windows"][0]["end"] = "08:30"
    data["holidays"][2028] = ["2028-01-30..2028-01-24"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="holidays"):
        load_checking_policy(path)


# -- windows and checks --------------------------------------------------------------------


def test_windows_met_missed_and_pending(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_checks(
        sessions,
        CLERK,
        local(2026, 11, 23, 7, 45),
        local(2026, 11, 23, 11, 30),  # on the window's last second: inside
        local(2026, 11, 23, 12, 15),  # outside every window: counts as a check only
        local(2026, 11, 23, 13, 29, 59),  # one second early: outside
    )
    with sessions() as session:
        afternoon = one(
            evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 23, 16, 45)),
            CLERK,
            MONDAY,
        )
        after = one(
            evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 24, 9)), CLERK, MONDAY
        )
        morning = one(
            evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 23, 9)), CLERK, MONDAY
        )

    assert [w.status for w in afternoon.windows] == ["met", "met", "missed", "pending"]
    assert afternoon.status == "non-compliant" and afternoon.compliant is False
    assert len(afternoon.checks) == 4 and afternoon.min_checks_status == "met"

    assert after.windows_with("missed") == ["13:30-14:30", "16:30-17:00"]
    assert after.min_checks_status == "met"

    # As of 09:00 only the morning check exists: the rest is pending, nothing missed yet.
    assert [w.status for w in morning.windows] == ["met", "pending", "pending", "pending"]
    assert morning.status == "pending" and morning.compliant is None
    assert len(morning.checks) == 1  # checks after `now` are not seen
    assert morning.min_checks_status == "pending"  # 1 of 4, but the day is not over


def test_compliant_day_weekend_holiday_future_and_min_checks(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_mailbox(sessions, CLERK2, "clerk")
    add_mailbox(sessions, OFFICIAL, "official")  # not tracked
    day = [local(2026, 11, 23, h, m) for h, m in ((8, 30), (11, 5), (14, 0), (16, 59), (17, 40))]
    add_checks(sessions, CLERK, *day)
    add_checks(sessions, CLERK2, *day[:4])
    add_checks(sessions, CLERK, local(2026, 9, 2, 9, 0))  # Quốc khánh
    now = local(2026, 11, 25, 10)
    with sessions() as session:
        days = evaluate(session, policy, date(2026, 11, 21), date(2026, 11, 26), now=now)
        strict = evaluate(
            session,
            policy.model_copy(update={"min_checks_per_day": 5}),
            MONDAY,
            MONDAY,
            now=now,
        )
        holiday = evaluate(session, policy, date(2026, 9, 2), date(2026, 9, 2), now=now)

    assert {d.mailbox for d in days} == {CLERK, CLERK2}  # tracked roles only
    assert len(days) == 2 * 6
    monday = one(days, CLERK, MONDAY)
    assert monday.status == "compliant" and monday.compliant is True
    assert len(monday.windows_with("met")) == 4 and len(monday.checks) == 5
    saturday = one(days, CLERK, date(2026, 11, 21))
    assert (saturday.working_day, saturday.status, saturday.compliant) == (
        False,
        "non-working",
        True,
    )
    assert saturday.windows == () and saturday.min_checks_status == "not-required"
    # 24/11: Ngày Văn hóa Việt Nam, a public holiday from 2026 (the `holidays` package).
    tuesday = one(days, CLERK, date(2026, 11, 24))
    assert (tuesday.working_day, tuesday.status) == (False, "non-working")
    wednesday = one(days, CLERK, date(2026, 11, 25))  # 10:00, no check yet
    assert wednesday.windows_with("missed") == ["07:30-08:30"]
    assert wednesday.status == "non-compliant"
    thursday = one(days, CLERK, date(2026, 11, 26))  # the future
    assert thursday.status == "pending" and set(thursday.windows_with("pending")) == {
        w.label for w in policy.windows
    }

    # Five checks required: four are not enough, even with every window met.
    by_box = {d.mailbox: d for d in strict}
    assert by_box[CLERK].status == "compliant"
    assert by_box[CLERK2].windows_with("missed") == []
    assert by_box[CLERK2].min_checks_status == "missed"
    assert by_box[CLERK2].status == "non-compliant"

    national_day = one(holiday, CLERK, date(2026, 9, 2))
    assert national_day.holiday and not national_day.working_day
    assert national_day.compliant is True and len(national_day.checks) == 1


def test_explicit_mailboxes_and_policy_listed_mailboxes(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_mailbox(sessions, OFFICIAL, "official")
    listed = policy.model_copy(update={"mailboxes": ("Hopthu@Ngoai.example.vn",)})
    with sessions() as session:
        assert {d.mailbox for d in evaluate(session, listed, MONDAY, MONDAY)} == {
            CLERK,
            "hopthu@ngoai.example.vn",
        }
        only = evaluate(session, policy, MONDAY, MONDAY, mailboxes=[OFFICIAL.upper()])
        assert [d.mailbox for d in only] == [OFFICIAL]
        assert evaluate(session, policy, MONDAY, date(2026, 11, 22)) == []


# -- priority messages ---------------------------------------------------------------------


def test_priority_delays_by_sender_and_by_certificate(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    on_time = add_message(
        sessions, sender=CHIEF.upper(), recipient=CLERK, at=local(2026, 11, 23, 9)
    )
    late = add_message(
        sessions,
        sender="vanthu@sotc.example.gov.vn",
        recipient=CLERK,
        at=local(2026, 11, 23, 14, 50),
        fingerprints=("cd" * 32, FINGERPRINT),  # signed by a priority certificate
    )
    open_ = add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 23, 16, 55))
    add_message(
        sessions, sender="vanthu@sotc.example.gov.vn", recipient=CLERK, at=local(2026, 11, 23, 10)
    )
    add_message(  # quarantined (Junk): not a message the clerk is expected to act on
        sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 23, 10, 5), action="quarantine"
    )
    add_checks(sessions, CLERK, local(2026, 11, 23, 9, 10), local(2026, 11, 23, 15, 20))

    with sessions() as session:
        [at_1700] = evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 23, 17))
        [at_1720] = evaluate(session, policy, MONDAY, MONDAY, now=local(2026, 11, 23, 17, 20))

    by_id = {p.record_id: p for p in at_1700.priority}
    assert set(by_id) == {on_time, late, open_}
    assert (by_id[on_time].status, by_id[on_time].delay_minutes) == ("on-time", 10.0)
    assert (by_id[late].status, by_id[late].delay_minutes) == ("late", 30.0)
    assert (by_id[open_].status, by_id[open_].delay_minutes) == ("pending", None)
    assert by_id[open_].deadline == local(2026, 11, 23, 17, 10)
    assert at_1700.to_json()["priority_delays_minutes"] == [10.0, 30.0, None]
    assert [p.status for p in at_1720.priority] == ["on-time", "late", "late"]


def test_priority_message_checked_after_the_range_and_on_a_weekend(
    sessions: sessionmaker[Session], policy: CheckingPolicy
) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 20, 17, 30))  # Friday
    add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 21, 9))  # Saturday
    add_checks(sessions, CLERK, local(2026, 11, 21, 9, 5), local(2026, 11, 23, 7, 40))
    with sessions() as session:
        [friday] = evaluate(
            session, policy, date(2026, 11, 20), date(2026, 11, 20), now=local(2026, 11, 24)
        )
        [saturday] = evaluate(
            session, policy, date(2026, 11, 21), date(2026, 11, 21), now=local(2026, 11, 24)
        )
    [message] = friday.priority
    assert message.checked_at == local(2026, 11, 21, 9, 5)  # found past the range's end
    assert message.status == "late" and message.delay_minutes == 15 * 60 + 35
    # A weekend has no windows, but a priority message still has to be checked in time.
    assert saturday.status == "non-working" and saturday.priority[0].delay_minutes == 5.0


# -- `mailsvc checks report` ---------------------------------------------------------------


def _home(tmp_path: Path, db_url: str) -> Path:
    home = tmp_path / "home"
    write_policies(home, priority={"max_delay_minutes": 15, "senders": [CHIEF]})
    (home / "mailsvc.toml").write_text(
        f'[server]\ndomain = "{DOMAIN}"\nhostname = "mail.{DOMAIN}"\n'
        f"[database]\nurl = {json.dumps(db_url)}\n",
        encoding="utf-8",
    )
    return home


def _report(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), "checks", "report", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _seed_week(sessions: sessionmaker[Session]) -> None:
    add_mailbox(sessions, CLERK, "clerk")
    add_mailbox(sessions, CLERK2, "clerk")
    add_mailbox(sessions, LEADER, "leader")
    for d in (16, 17, 18):
        add_checks(
            sessions,
            CLERK,
            *(local(2026, 11, d, h, m) for h, m in ((7, 50), (11, 10), (13, 45), (16, 40))),
        )
    add_checks(sessions, CLERK2, local(2026, 11, 16, 7, 35), local(2026, 11, 16, 19, 5))
    add_message(sessions, sender=CHIEF, recipient=CLERK, at=local(2026, 11, 16, 10, 55))


def test_report_json_schema(tmp_path: Path, db_url: str, sessions: sessionmaker[Session]) -> None:
    _seed_week(sessions)
    home = _home(tmp_path, db_url)
    days: list[dict[str, Any]] = json.loads(
        _report(home, "--from", "2026-11-14", "--to", "2026-11-18", "--json")
    )
    assert len(days) == 2 * 5 and {d["mailbox"] for d in days} == {CLERK, CLERK2}
    for day in days:
        assert SCHEMA_KEYS <= set(day)
        assert isinstance(day["checks"], int) and isinstance(day["working_day"], bool)
        assert day["compliant"] in (True, False, None)
        for moment in day["check_times"]:
            assert moment.endswith("+07:00")
    monday = next(d for d in days if d["mailbox"] == CLERK and d["date"] == "2026-11-16")
    assert monday["working_day"] is True and monday["compliant"] is True
    assert monday["checks"] == 4 and monday["windows_met"] == [
        w["window"] for w in monday["windows"]
    ]
    assert monday["priority_delays_minutes"] == [15.0]  # 10:55 → 11:10, the limit itself
    assert monday["priority_messages"][0]["sender"] == CHIEF
    assert monday["priority_messages"][0]["arrived_at"] == "2026-11-16T10:55:00+07:00"
    other = next(d for d in days if d["mailbox"] == CLERK2 and d["date"] == "2026-11-16")
    assert other["windows_met"] == ["07:30-08:30"] and other["compliant"] is False
    assert other["windows_missed"] == ["11:00-11:30", "13:30-14:30", "16:30-17:00"]
    saturday = next(d for d in days if d["mailbox"] == CLERK and d["date"] == "2026-11-14")
    assert saturday["working_day"] is False and saturday["compliant"] is True

    only = json.loads(
        _report(home, "--from", "2026-11-16", "--to", "2026-11-16", "--mailbox", CLERK2, "--json")
    )
    assert [d["mailbox"] for d in only] == [CLERK2]

    table = _report(home, "--from", "2026-11-16", "--to", "2026-11-16")
    # Read by clerks and leaders: Vietnamese headings and results, dd/mm/yyyy, no English.
    assert "HỘP THƯ" in table and "KẾT QUẢ" in table and "Không đạt" in table
    assert "16/11/2026" in table and "15 phút" in table
    assert "non-compliant" not in table and "MAILBOX" not in table and "2026-11-16" not in table

    bad = CliRunner().invoke(
        main,
        ["--home", str(home), "checks", "report", "--from", "2026-11-25", "--to", "2026-11-01"],
    )
    assert bad.exit_code == 1 and "--to is before --from" in bad.output


def test_report_html_is_self_contained_with_heat_map_and_chart(
    tmp_path: Path, db_url: str, sessions: sessionmaker[Session]
) -> None:
    _seed_week(sessions)
    home = _home(tmp_path, db_url)
    out = tmp_path / "bao-cao.html"
    printed = _report(home, "--from", "2026-10-21", "--to", "2026-11-19", "--html", str(out))
    assert str(out) in printed
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().startswith("<!DOCTYPE html>")
    # Self-contained: no address outside the file, no script, no external stylesheet.
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "Báo cáo kiểm tra hộp thư công vụ" in html and "Bản đồ nhiệt tuân thủ" in html
    assert "Thời điểm kiểm tra hộp thư" in html
    # Heat map: one cell per day (30 days) for all mailboxes and for each mailbox.
    heatmaps = re.findall(r'<svg class="heat".*?</svg>', html, re.S)
    assert len(heatmaps) == 3
    assert all(len(re.findall(r"<rect ", h)) == 30 for h in heatmaps)
    assert '<rect class="ok"' in html and '<rect class="bad1"' in html
    assert "16/11/2026: Đạt" in html and "2026-11-16" not in html
    # Chart of check times: a dot per check slot, windows shaded.
    chart = re.findall(r'<svg class="chart".*?</svg>', html, re.S)[0]
    assert len(re.findall(r"<circle ", chart)) == 3 * 4 + 2
    assert chart.count('class="band"') == 4 and "19:00: 1 lần" in chart
    assert "Kỳ báo cáo: từ ngày 21/10/2026 đến ngày 19/11/2026" in html
    assert re.search(r"Lập lúc \d\d:\d\d \d\d/\d\d/20\d\d", html)  # Vietnam's zone


def test_public_holidays_come_from_the_package_for_any_year() -> None:
    """The file lists only announced swaps; Tết, Giỗ Tổ and the fixed days of 2028 and
    later are days off without anyone editing it (the calendar used to end in 2027)."""
    policy = load_checking_policy(POLICY_FILE)
    assert 2028 not in policy.holidays and not policy.fixed_holidays
    for day in (
        date(2028, 1, 26),  # Tết Mậu Thân (mùng 1)
        date(2028, 1, 28),  # mùng 3 Tết
        date(2028, 4, 4),  # Giỗ Tổ Hùng Vương
        date(2028, 5, 1),  # Quốc tế Lao động
        date(2028, 9, 1),  # Quốc khánh, ngày liền kề
        date(2030, 2, 4),  # Tết Canh Tuất (mùng 2)
    ):
        assert not policy.is_working_day(day), day
    assert policy.is_working_day(date(2028, 1, 31))  # a Monday after Tết
    assert policy.is_working_day(date(2025, 4, 26))  # a Saturday worked (làm bù), announced
    assert not policy.is_working_day(date(2025, 5, 2))  # the swapped day off, announced


def test_next_years_swaps_are_asked_for_from_the_first_of_december() -> None:
    policy = load_checking_policy(POLICY_FILE)
    assert policy.missing_swaps_year(date(2026, 11, 30)) is None
    assert policy.missing_swaps_year(date(2026, 12, 1)) is None  # 2027 is listed (no swaps)
    assert policy.missing_swaps_year(date(2027, 11, 30)) is None
    assert policy.missing_swaps_year(date(2027, 12, 1)) == 2028
    assert policy.missing_swaps_year(date(2027, 12, 31)) == 2028
    announced = policy.model_copy(update={"holidays": {**policy.holidays, 2028: ()}})
    assert announced.missing_swaps_year(date(2027, 12, 1)) is None
