"""``mailsvc audit``: read and verify the hash-chained audit log."""

from __future__ import annotations

import sys
from typing import Any

import click

from mailsvc import audit
from mailsvc.cli import Context
from mailsvc.cli.console import echo_json, echo_table, json_option, open_session

pass_ctx = click.make_pass_decorator(Context)


@click.group("audit")
def audit_group() -> None:
    """Audit log (nhật ký quản trị) of every administrative action."""


@audit_group.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.option("--actor")
@click.option("--action", help="Action or prefix, e.g. mailbox. or agency.add")
@click.option("--target")
@json_option
@pass_ctx
def list_cmd(
    ctx: Context,
    limit: int,
    actor: str | None,
    action: str | None,
    target: str | None,
    as_json: bool,
) -> None:
    """Newest entries first."""
    with open_session(ctx) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "details": e.details,
                "hash": e.hash,
            }
            for e in audit.list_entries(
                session, limit=limit, actor=actor, action=action, target=target
            )
        ]
    if as_json:
        echo_json(rows, ctx)
        return
    table = [{**r, "details": _short(r["details"])} for r in rows]
    echo_table(
        table,
        (
            ("id", "ID"),
            ("at", "TIME"),
            ("actor", "ACTOR"),
            ("action", "ACTION"),
            ("target", "TARGET"),
            ("details", "DETAILS"),
        ),
        ctx,
    )


def _short(details: dict[str, Any], width: int = 70) -> str:
    text = ", ".join(f"{k}={v}" for k, v in details.items() if v not in ("", [], {}, None))
    return text if len(text) <= width else text[: width - 1] + "…"


@audit_group.command("verify")
@json_option
@pass_ctx
def verify_cmd(ctx: Context, as_json: bool) -> None:
    """Check the hash chain; exit 2 if any entry was altered or deleted."""
    with open_session(ctx) as session:
        problems = audit.verify(session)
        count, head = audit.head_hash(session)
    if as_json:
        echo_json({"ok": not problems, "entries": count, "head": head, "problems": problems}, ctx)
    elif problems:
        for problem in problems:
            click.echo(f"TAMPERED: {problem}")
        click.echo(f"{len(problems)} problem(s) in the audit log")
    else:
        click.echo(f"audit log intact: {count} entries, head {head}")
    if problems:
        sys.exit(2)


def register(group: click.Group) -> None:
    group.add_command(audit_group)
