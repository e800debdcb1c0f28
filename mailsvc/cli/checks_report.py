"""``mailsvc checks report``: compliance with the mailbox-check policy, per mailbox per day.

A table by default; ``--json`` prints the documented schema (docs/checks-compliance.md),
one object per mailbox per day; ``--html FILE`` writes a self-contained report (heat map
of compliance, chart of check times). Dates are calendar days in +07:00.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from mailsvc.checks.compliance import evaluate, tracked_mailboxes
from mailsvc.checks.policy import CheckingPolicy, load_checking_policy
from mailsvc.checks.report import STATUS_LABELS, render_html
from mailsvc.cli import Context
from mailsvc.cli.console import echo_table, open_session, parse_day, progress
from mailsvc.errors import MailsvcError
from mailsvc.time import vn_date

PRIORITY_LABELS = {"on-time": "kịp thời", "late": "trễ", "pending": "đang chờ"}

pass_ctx = click.make_pass_decorator(Context)

MAX_DAYS = 3 * 366


def _policy(ctx: Context) -> CheckingPolicy:
    from mailsvc.app import policies_dir  # the one rule for where policies live

    return load_checking_policy(policies_dir(ctx.settings) / "checking.yaml")


def _templates(ctx: Context) -> Path:
    from mailsvc.app import templates_dir

    return templates_dir(ctx.settings)


@click.command("report")
@click.option("--from", "since", required=True, metavar="YYYY-MM-DD", help="First day.")
@click.option("--to", "until", required=True, metavar="YYYY-MM-DD", help="Last day (included).")
@click.option(
    "--mailbox",
    "mailboxes",
    multiple=True,
    help="Mailbox address (repeatable); default: every tracked mailbox (policy tracked_roles).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the JSON schema of docs/checks-compliance.md."
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write a self-contained HTML report (heat map, chart of check times) to FILE.",
)
@pass_ctx
def report_cmd(
    ctx: Context,
    since: str,
    until: str,
    mailboxes: tuple[str, ...],
    as_json: bool,
    html_file: Path | None,
) -> None:
    """Compliance per mailbox per day: windows met or missed, checks, priority delays."""
    if as_json and html_file:
        raise MailsvcError("choose one of --json and --html")
    start, end = parse_day(since, "--from"), parse_day(until, "--to")
    if end < start:
        raise MailsvcError("--to is before --from")
    if (end - start).days >= MAX_DAYS:
        raise MailsvcError(f"a report covers at most {MAX_DAYS} days")
    policy = _policy(ctx)
    now = datetime.now(UTC)
    with open_session(ctx) as session:
        boxes = (
            sorted({m.strip().lower() for m in mailboxes})
            if mailboxes
            else tracked_mailboxes(session, policy)
        )
        # One mailbox at a time (each is independent): a progress bar over a year of 200
        # mailboxes on a terminal; silent otherwise.
        days = []
        with progress(len(boxes), "checks report") as advance:
            for box in boxes:
                days += evaluate(session, policy, start, end, mailboxes=[box], now=now)
                advance(1)
    if as_json:
        click.echo(json.dumps([d.to_json() for d in days], ensure_ascii=False, indent=2))
        return
    if html_file is not None:
        html = render_html(days, policy, start, end, _templates(ctx), generated_at=now)
        html_file.write_text(html, encoding="utf-8")
        click.echo(f"{html_file}: {len(days)} mailbox-days, {len(html) // 1024} KiB")
        return
    # The table is read by clerks and leaders: Vietnamese headings, labels and dates
    # (dd/mm/yyyy); --json stays machine output (ISO 8601, English codes).
    rows = [
        {
            "mailbox": d.mailbox,
            "date": vn_date(d.day),
            "working": "có" if d.working_day else "không",
            "checks": f"{len(d.checks)}/{d.min_checks}" if d.working_day else str(len(d.checks)),
            "missed": ", ".join(d.windows_with("missed")),
            "pending": ", ".join(d.windows_with("pending")),
            "priority": ", ".join(
                f"{p.delay_minutes:g} phút"
                if p.delay_minutes is not None
                else PRIORITY_LABELS.get(p.status, p.status)
                for p in d.priority
            ),
            "status": STATUS_LABELS.get(d.status, d.status),
        }
        for d in days
    ]
    echo_table(
        rows,
        [
            ("mailbox", "HỘP THƯ"),
            ("date", "NGÀY"),
            ("working", "NGÀY LÀM VIỆC"),
            ("checks", "SỐ LẦN KIỂM TRA"),
            ("missed", "KHUNG GIỜ BỎ LỠ"),
            ("pending", "KHUNG GIỜ CHƯA ĐẾN"),
            ("priority", "ĐỘ TRỄ THƯ KHẨN"),
            ("status", "KẾT QUẢ"),
        ],
        ctx,
    )


def register(group: click.Group) -> None:
    """Add ``report`` to the ``checks`` group, creating the group if needed."""
    checks = group.commands.get("checks")
    if not isinstance(checks, click.Group):

        @group.group("checks")
        def checks_group() -> None:
            """Mailbox checks (kiểm tra hộp thư): records and compliance."""

        checks = checks_group
    checks.add_command(report_cmd)
