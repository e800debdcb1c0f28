"""``mailsvc checks``: mailbox checks (who opened which INBOX, when, from where).

``list`` prints the recorded checks; dates given on the command line are calendar
days in the server's zone (+07:00), times are shown as ISO 8601 in that zone.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import click

from mailsvc.checks.records import checks_of
from mailsvc.cli import Context
from mailsvc.cli.console import (
    display_zone,
    echo_json,
    echo_table,
    json_option,
    open_session,
    parse_optional_day,
)
from mailsvc.errors import MailsvcError

pass_ctx = click.make_pass_decorator(Context)


@click.group("checks")
def checks_group() -> None:
    """Mailbox checks: IMAP sessions that opened INBOX (who, when, from where)."""


@checks_group.command("list")
@click.option("--mailbox", metavar="ADDR", help="Only this mailbox.")
@click.option("--from", "since", metavar="YYYY-MM-DD", help="Checked on or after this day.")
@click.option("--to", "until", metavar="YYYY-MM-DD", help="Checked on or before this day.")
@json_option
@pass_ctx
def list_cmd(
    ctx: Context, mailbox: str | None, since: str | None, until: str | None, as_json: bool
) -> None:
    """Recorded checks in time order: time, mailbox, source address, client, new messages."""
    zone = display_zone(ctx)
    start, end = parse_optional_day(since, "--from"), parse_optional_day(until, "--to")
    if start and end and start > end:
        raise MailsvcError("--from is after --to")
    lower = datetime.combine(start, time(), zone) if start else None
    upper = datetime.combine(end + timedelta(days=1), time(), zone) if end else None
    with open_session(ctx) as session:
        rows: list[dict[str, Any]] = [
            {
                "at": c.at,
                "mailbox": c.mailbox,
                "source": c.source,
                "remote_ip": c.remote_ip,
                "client": c.client,
                "new_messages": c.new_messages,
                "session": c.session,
            }
            for c in checks_of(session, mailbox=mailbox, since=lower, until=upper)
        ]
    if as_json:
        echo_json(rows, ctx)
        return
    echo_table(
        rows,
        (
            ("at", "TIME"),
            ("mailbox", "MAILBOX"),
            ("remote_ip", "FROM"),
            ("client", "CLIENT"),
            ("new_messages", "NEW"),
            ("source", "SOURCE"),
        ),
        ctx,
    )


def register(group: click.Group) -> None:
    group.add_command(checks_group)
