"""``mailsvc queue``: the outbound queue (mail from officials to other servers, notices,
bounces): list, show, retry, hold, release, delete. Changes are audited; the running
server picks them up at its next pass (``outbound.poll_seconds``)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from mailsvc.cli import Context
from mailsvc.cli.console import actor, echo_json, echo_record, echo_table, json_option, open_session
from mailsvc.outbound import admin
from mailsvc.outbound.models import FAILED, HELD, QUEUED, SENT

pass_ctx = click.make_pass_decorator(Context)
STATES = (QUEUED, HELD, FAILED, SENT, admin.DELETED)


@click.group("queue")
def queue_group() -> None:
    """Outbound queue administration (like mailq / postqueue)."""


@queue_group.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only rows in this state (repeatable; default: queued and held).",
)
@click.option("--all", "all_states", is_flag=True, help="Every row, sent and failed included.")
@click.option("--limit", type=click.IntRange(1, 1_000_000))
@json_option
@pass_ctx
def list_cmd(
    ctx: Context, states: Sequence[str], all_states: bool, limit: int | None, as_json: bool
) -> None:
    """Pending mail, oldest first."""
    wanted: Sequence[str] = () if all_states else (states or admin.PENDING)
    with open_session(ctx) as session:
        views = [admin.row_view(r) for r in admin.list_rows(session, wanted, limit)]
    if as_json:
        echo_json(views, ctx)
        return
    echo_table(
        [
            {
                **v,
                "error": (v["last_error"][:60] + "…")
                if len(v["last_error"]) > 60
                else v["last_error"],
            }
            for v in views
        ],
        (
            ("id", "ID"),
            ("state", "STATE"),
            ("kind", "KIND"),
            ("created_at", "QUEUED AT"),
            ("attempts", "TRIES"),
            ("sender", "SENDER"),
            ("recipient", "RECIPIENT"),
            ("size", "SIZE"),
            ("error", "LAST ERROR"),
        ),
        ctx,
    )
    click.echo(f"{len(views)} message(s)", err=True)


@queue_group.command("show")
@click.argument("row_id", type=int)
@json_option
@pass_ctx
def show_cmd(ctx: Context, row_id: int, as_json: bool) -> None:
    """One queued message: envelope, state, attempts, last error and its header fields."""
    with open_session(ctx) as session:
        view = admin.row_view(admin.get_row(session, row_id), detail=True)
    if as_json:
        echo_json(view, ctx)
        return
    headers = view.pop("headers")
    echo_record(view, ctx)
    for name, value in headers.items():
        click.echo(f"  {name}: {value}")


def _act(ctx: Context, ids: Sequence[int], verb: str, **kw: str) -> None:
    action = getattr(admin, verb)
    with open_session(ctx) as session:
        for row_id in ids:
            action(session, admin.get_row(session, row_id), actor=actor(), **kw)
        session.commit()
    for row_id in ids:
        click.echo(f"{verb}: {row_id}")


@queue_group.command("retry")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every queued row (now due).")
@pass_ctx
def retry_cmd(ctx: Context, ids: Sequence[int], every: bool) -> None:
    """Try again now (a failed message is queued again, with a fresh lifetime)."""
    if every and ids:
        raise click.UsageError("give message ids or --all, not both")
    if not every and not ids:
        raise click.UsageError("give message ids, or --all")
    if every:
        with open_session(ctx) as session:
            ids = [r.id for r in admin.list_rows(session, (QUEUED,))]
        if not ids:
            click.echo("retry: nothing queued")
            return
    _act(ctx, ids, "retry")


@queue_group.command("hold")
@click.argument("ids", type=int, nargs=-1, required=True)
@pass_ctx
def hold_cmd(ctx: Context, ids: Sequence[int]) -> None:
    """Keep messages in the queue without sending them."""
    _act(ctx, ids, "hold")


@queue_group.command("release")
@click.argument("ids", type=int, nargs=-1, required=True)
@pass_ctx
def release_cmd(ctx: Context, ids: Sequence[int]) -> None:
    """Send held messages again (due now)."""
    _act(ctx, ids, "release")


@queue_group.command("delete")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--reason", default="", help="Why (kept in the audit log).")
@pass_ctx
def delete_cmd(ctx: Context, ids: Sequence[int], reason: str) -> None:
    """Drop pending messages (kept as 'deleted' for the record; no bounce is sent)."""
    _act(ctx, ids, "delete", reason=reason)


def register(group: click.Group) -> None:
    group.add_command(queue_group)
