"""``mailsvc agency``: the agency directory (cơ quan, mã định danh, domains, known addresses)."""

from __future__ import annotations

import click

from mailsvc import directory
from mailsvc.cli import Context
from mailsvc.cli.console import actor, echo_json, echo_record, echo_table, json_option, open_session

pass_ctx = click.make_pass_decorator(Context)

_LIST_COLUMNS = (
    ("code", "CODE"),
    ("name", "NAME"),
    ("domains", "DOMAINS"),
    ("local", "LOCAL"),
    ("mailboxes", "MAILBOXES"),
)


@click.group("agency")
def agency_group() -> None:
    """Agency directory (danh bạ cơ quan)."""


@agency_group.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, help="Mail domain (repeatable).")
@click.option(
    "--known-address",
    "known_addresses",
    multiple=True,
    help="Known sending address, e.g. vanthu@soyte.example.vn (repeatable).",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    help="Address the agency's mailboxes may send as (repeatable).",
)
@click.option(
    "--dkim-key",
    "dkim_keys",
    multiple=True,
    metavar="SELECTOR:TXT",
    help="Pinned DKIM public key: SELECTOR:TXT, SELECTOR._domainkey.DOMAIN:TXT, "
    "TXT may be @FILE (repeatable).",
)
@click.option(
    "--allowed-sender",
    "allowed_senders",
    multiple=True,
    metavar="IP/CIDR",
    help="Network allowed to send for the domains (repeatable).",
)
@click.option("--local", is_flag=True, help="Its domains are served by this server.")
@click.option(
    "--include-subdomains",
    is_flag=True,
    help="Its allowed senders and pinned DKIM keys also vouch for subdomains of its "
    "domains (mail.soyte.example.vn sending as soyte.example.vn's subdomains).",
)
@json_option
@pass_ctx
def add_cmd(
    ctx: Context,
    code: str,
    name: str,
    domains: tuple[str, ...],
    known_addresses: tuple[str, ...],
    aliases: tuple[str, ...],
    dkim_keys: tuple[str, ...],
    allowed_senders: tuple[str, ...],
    local: bool,
    include_subdomains: bool,
    as_json: bool,
) -> None:
    """Add an agency: CODE is its identifier (mã định danh, e.g. 000.00.00.H29), NAME its
    full Vietnamese name."""
    with open_session(ctx) as session:
        agency = directory.add_agency(
            session,
            actor=actor(),
            code=code,
            name=name,
            domains=domains,
            known_addresses=known_addresses,
            aliases=aliases,
            dkim_keys=dkim_keys,
            allowed_senders=allowed_senders,
            local=local,
            include_subdomains=include_subdomains,
        )
        view = directory.agency_view(agency)
        session.commit()
    if as_json:
        echo_json(view, ctx)
    else:
        click.echo(f"added agency {view['code']}: {view['name']}")


@agency_group.command("update")
@click.argument("code")
@click.option("--name")
@click.option("--add-domain", multiple=True)
@click.option("--remove-domain", multiple=True)
@click.option("--add-known-address", multiple=True)
@click.option("--remove-known-address", multiple=True)
@click.option("--add-alias", multiple=True)
@click.option("--remove-alias", multiple=True)
@click.option("--add-dkim-key", multiple=True, metavar="SELECTOR:TXT")
@click.option("--remove-dkim-key", multiple=True, metavar="SELECTOR")
@click.option("--add-allowed-sender", multiple=True, metavar="IP/CIDR")
@click.option("--remove-allowed-sender", multiple=True, metavar="IP/CIDR")
@click.option("--local/--not-local", default=None)
@click.option(
    "--include-subdomains/--exact-domains",
    default=None,
    help="Whether its allowed senders and pinned DKIM keys cover subdomains.",
)
@pass_ctx
def update_cmd(
    ctx: Context,
    code: str,
    name: str | None,
    local: bool | None,
    include_subdomains: bool | None,
    **lists: tuple[str, ...],
) -> None:
    """Change an agency."""
    with open_session(ctx) as session:
        directory.update_agency(
            session,
            code,
            actor=actor(),
            name=name,
            local=local,
            include_subdomains=include_subdomains,
            add_domains=lists["add_domain"],
            remove_domains=lists["remove_domain"],
            add_known_addresses=lists["add_known_address"],
            remove_known_addresses=lists["remove_known_address"],
            add_aliases=lists["add_alias"],
            remove_aliases=lists["remove_alias"],
            add_dkim_keys=lists["add_dkim_key"],
            remove_dkim_keys=lists["remove_dkim_key"],
            add_allowed_senders=lists["add_allowed_sender"],
            remove_allowed_senders=lists["remove_allowed_sender"],
        )
        session.commit()
    click.echo(f"updated agency {code}")


@agency_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """List agencies."""
    with open_session(ctx) as session:
        views = [
            {**directory.agency_view(a), "mailboxes": len(a.mailboxes)}
            for a in directory.list_agencies(session)
        ]
    if as_json:
        echo_json(views, ctx)
    else:
        echo_table(views, _LIST_COLUMNS, ctx)


@agency_group.command("show")
@click.argument("code")
@json_option
@pass_ctx
def show_cmd(ctx: Context, code: str, as_json: bool) -> None:
    """Show one agency."""
    with open_session(ctx) as session:
        agency = directory.get_agency(session, code)
        view = {
            **directory.agency_view(agency),
            "mailboxes": [m.address for m in agency.mailboxes if not m.removed],
            "created_at": agency.created_at,
        }
    if as_json:
        echo_json(view, ctx)
    else:
        echo_record(view, ctx)


def register(group: click.Group) -> None:
    group.add_command(agency_group)
