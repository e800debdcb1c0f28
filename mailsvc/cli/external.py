"""``mailsvc external``: mailboxes fetched from other IMAP servers (list, poll now)."""

from __future__ import annotations

import time

import click

from mailsvc.cli import Context
from mailsvc.cli.console import echo_json, echo_record, echo_table, json_option, open_session
from mailsvc.config import ExternalMailbox
from mailsvc.errors import MailsvcError, NotFoundError
from mailsvc.external.models import ExternalState
from mailsvc.external.poller import request_poll
from mailsvc.external.status import mailbox_view

pass_ctx = click.make_pass_decorator(Context)

_COLUMNS = (
    ("name", "NAME"),
    ("server", "SERVER"),
    ("deliver_to", "DELIVER TO"),
    ("mode", "MODE"),
    ("last_poll", "LAST POLL"),
    ("last_poll_new", "NEW"),
    ("uidvalidity", "UIDVALIDITY"),
    ("last_uid", "LAST UID"),
    ("accepted", "ACCEPTED"),
    ("refused", "REFUSED"),
    ("last_error", "LAST ERROR"),
)


def _configured(ctx: Context, name: str) -> ExternalMailbox:
    for cfg in ctx.settings.external:
        if cfg.name == name:
            return cfg
    known = ", ".join(c.name for c in ctx.settings.external) or "none configured"
    raise NotFoundError(f"no external mailbox named {name!r} in mailsvc.toml ({known})")


@click.group("external")
def external_group() -> None:
    """External mailboxes: official mailboxes on another IMAP server, fetched here."""


@external_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """Each configured mailbox: last poll, UIDVALIDITY, last UID taken, last error."""
    with open_session(ctx) as session:
        views = [mailbox_view(session, cfg) for cfg in ctx.settings.external]
    if as_json:
        echo_json(views, ctx)
        return
    echo_table(views, _COLUMNS, ctx)


@external_group.command("poll")
@click.argument("name")
@click.option(
    "--wait",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds to wait for the running server's poll.",
)
@json_option
@pass_ctx
def poll_cmd(ctx: Context, name: str, wait: float, as_json: bool) -> None:
    """Ask the running server (`mailsvc serve`) to poll NAME now, and show the result."""
    cfg = _configured(ctx, name)
    with open_session(ctx) as session:
        asked = request_poll(session, name)
        session.commit()
    deadline = time.monotonic() + wait
    while True:
        with open_session(ctx) as session:
            state = session.get(ExternalState, name)
            last_poll = state.last_poll_at if state else None
            last_error = state.last_error_at if state else None
            polled = last_poll is not None and last_poll >= asked
            failed = not polled and last_error is not None and last_error >= asked
            if polled or failed:
                view = mailbox_view(session, cfg)
                break
        if time.monotonic() > deadline:
            raise MailsvcError(
                f"no poll of {name} within {wait:.0f} s: is `mailsvc serve` running "
                "with this mailbox configured?"
            )
        time.sleep(0.2)
    if as_json:
        echo_json(view, ctx)
    else:
        echo_record(view, ctx)
    if failed:
        raise MailsvcError(f"poll of {name} failed: {view['last_error']}")


def register(group: click.Group) -> None:
    group.add_command(external_group)
