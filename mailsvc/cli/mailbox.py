"""``mailsvc mailbox``: add, list, show, update, disable, enable, remove, reset-password,
set-password."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from mailsvc import accounts
from mailsvc.cli import Context
from mailsvc.cli.console import (
    actor,
    echo_json,
    echo_record,
    echo_table,
    json_option,
    open_session,
    show_time,
)
from mailsvc.errors import MailsvcError

pass_ctx = click.make_pass_decorator(Context)

_LIST_COLUMNS = (
    ("address", "ADDRESS"),
    ("full_name", "NAME"),
    ("unit", "UNIT"),
    ("role", "ROLE"),
    ("agency", "AGENCY"),
    ("state", "STATE"),
)


def _state(view: dict[str, object]) -> str:
    if view["removed"]:
        return "removed"
    if not view["enabled"]:
        return "disabled"
    return "must-change" if view["must_change"] else "active"


@click.group("mailbox")
def mailbox_group() -> None:
    """Mailboxes (hộp thư): provisioning and passwords."""


@mailbox_group.command("add")
@click.argument("address", required=False)
@click.option("--address", "address_opt", help="Exact address (instead of deriving it).")
@click.option("--name", "full_name", default="", help='Full name, e.g. "Nguyễn Văn An".')
@click.option("--unit", default="", help="Unit (đơn vị), e.g. stttt.")
@click.option("--domain", default="", help="Mail domain when deriving [default: server.domain].")
@click.option("--role", type=click.Choice(accounts.ROLES), default="official", show_default=True)
@click.option("--agency", "agency_code", help="Agency code (mã định danh).")
@json_option
@pass_ctx
def add_cmd(
    ctx: Context,
    address: str | None,
    address_opt: str | None,
    full_name: str,
    unit: str,
    domain: str,
    role: str,
    agency_code: str | None,
    as_json: bool,
) -> None:
    """Add a mailbox by ADDRESS, or by --name and --unit using the naming convention
    (Nguyễn Văn An, unit stttt -> annv.stttt@DOMAIN). Prints a one-time password once."""
    if address and address_opt and address != address_opt:
        raise click.UsageError("give the address once")
    with open_session(ctx) as session:
        new = accounts.add_mailbox(
            session,
            ctx.settings.password,
            actor=actor(),
            address=address or address_opt,
            full_name=full_name,
            unit=unit,
            domain=domain or ctx.settings.server.domain,
            role=role,
            agency_code=agency_code,
        )
        view = accounts.mailbox_view(new.mailbox)
        session.commit()
    if as_json:
        echo_json({**view, "one_time_password": new.one_time_password}, ctx)
        return
    click.echo(f"added {view['address']} (role {role})")
    _print_one_time(new.one_time_password, new.expires_at, ctx)


def _print_one_time(password: str, expires: datetime, ctx: Context) -> None:
    click.echo(f"one-time password: {password}")
    click.echo(
        f"valid until {show_time(expires, ctx)}; shown only now. The user "
        f"must replace it on the password page: https://{ctx.settings.server.hostname}"
        f":{ctx.settings.listen.http.rpartition(':')[2]}/password"
    )


@mailbox_group.command("list")
@click.option("--domain")
@click.option("--agency", "agency_code")
@click.option("--role", type=click.Choice(accounts.ROLES))
@click.option("--all", "include_removed", is_flag=True, help="Include removed mailboxes.")
@json_option
@pass_ctx
def list_cmd(
    ctx: Context,
    domain: str | None,
    agency_code: str | None,
    role: str | None,
    include_removed: bool,
    as_json: bool,
) -> None:
    """List mailboxes."""
    with open_session(ctx) as session:
        views = [
            accounts.mailbox_view(m)
            for m in accounts.list_mailboxes(
                session,
                domain=domain,
                agency_code=agency_code,
                role=role,
                include_removed=include_removed,
            )
        ]
    if as_json:
        echo_json(views, ctx)
        return
    echo_table([{**v, "state": _state(v)} for v in views], _LIST_COLUMNS, ctx)


@mailbox_group.command("show")
@click.argument("address")
@json_option
@pass_ctx
def show_cmd(ctx: Context, address: str, as_json: bool) -> None:
    """Show one mailbox."""
    with open_session(ctx) as session:
        view = accounts.mailbox_view(accounts.get_mailbox(session, address))
    view["maildir"] = str(
        accounts.maildir_path(
            ctx.settings.path(ctx.settings.paths.maildir_root), str(view["address"])
        )
    )
    if as_json:
        echo_json(view, ctx)
    else:
        echo_record({**view, "state": _state(view)}, ctx)


@mailbox_group.command("update")
@click.argument("address")
@click.option("--name", "full_name")
@click.option("--unit")
@click.option("--role", type=click.Choice(accounts.ROLES))
@click.option("--agency", "agency_code", help='Agency code; "" detaches.')
@pass_ctx
def update_cmd(
    ctx: Context,
    address: str,
    full_name: str | None,
    unit: str | None,
    role: str | None,
    agency_code: str | None,
) -> None:
    """Change a mailbox's name, unit, role or agency (not its address)."""
    with open_session(ctx) as session:
        accounts.update_mailbox(
            session,
            address,
            actor=actor(),
            full_name=full_name,
            unit=unit,
            role=role,
            agency_code=agency_code,
        )
        session.commit()
    click.echo(f"updated {address.lower()}")


@mailbox_group.command("disable")
@click.argument("address")
@pass_ctx
def disable_cmd(ctx: Context, address: str) -> None:
    """Refuse all logins and deliveries for the mailbox; the mail is kept."""
    with open_session(ctx) as session:
        accounts.set_enabled(session, address, False, actor=actor())
        session.commit()
    click.echo(f"disabled {address.lower()}")


@mailbox_group.command("enable")
@click.argument("address")
@pass_ctx
def enable_cmd(ctx: Context, address: str) -> None:
    """Allow logins again."""
    with open_session(ctx) as session:
        accounts.set_enabled(session, address, True, actor=actor())
        session.commit()
    click.echo(f"enabled {address.lower()}")


@mailbox_group.command("remove")
@click.argument("address")
@click.option("--purge", is_flag=True, help="Also delete the mail (the Maildir). Irreversible.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def remove_cmd(ctx: Context, address: str, purge: bool, yes: bool) -> None:
    """Remove a mailbox: logins stop, the address stays reserved, the mail is kept
    unless --purge."""
    root = ctx.settings.path(ctx.settings.paths.maildir_root)
    if purge and not yes:
        click.confirm(
            f"Delete ALL mail of {address.lower()} ({accounts.maildir_path(root, address)})? "
            "This cannot be undone",
            abort=True,
        )
    with open_session(ctx) as session:
        path = accounts.remove_mailbox(
            session, address, actor=actor(), maildir_root=root, purge=purge
        )
        session.commit()
    if purge:
        deleted = accounts.purge_maildir(root, address)
        click.echo(f"removed {address.lower()}; mail deleted ({deleted or 'no Maildir found'})")
    else:
        click.echo(f"removed {address.lower()}; mail kept in {path}")


@mailbox_group.command("reset-password")
@click.argument("address")
@json_option
@pass_ctx
def reset_password_cmd(ctx: Context, address: str, as_json: bool) -> None:
    """Give the mailbox a new one-time password (printed once, must be changed on the
    password page before IMAP or submission accept it)."""
    with open_session(ctx) as session:
        password, expires = accounts.reset_password(
            session, ctx.settings.password, address, actor=actor()
        )
        session.commit()
    if as_json:
        echo_json(
            {"address": address.lower(), "one_time_password": password, "expires_at": expires},
            ctx,
        )
        return
    _print_one_time(password, expires, ctx)


@mailbox_group.command("set-password")
@click.argument("address")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
@click.option(
    "--no-must-change",
    is_flag=True,
    help="Do not require the user to change it at first use (domain rule §10 says they should).",
)
@pass_ctx
def set_password_cmd(ctx: Context, address: str, from_stdin: bool, no_must_change: bool) -> None:
    """Set a password chosen by the administrator (strength-checked)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "New password", hide_input=True, confirmation_prompt="Repeat the password"
        )
    if not password:
        raise MailsvcError("empty password")
    with open_session(ctx) as session:
        accounts.set_password(
            session,
            ctx.settings.password,
            address,
            password,
            actor=actor(),
            must_change=not no_must_change,
        )
        session.commit()
    click.echo(
        f"password set for {address.lower()}"
        + ("" if no_must_change else "; the user must change it on the password page")
    )


def register(group: click.Group) -> None:
    group.add_command(mailbox_group)
