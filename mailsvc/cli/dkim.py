"""``mailsvc dkim``: the DNS records that publish our DKIM keys, one per local domain."""

from __future__ import annotations

import click
from sqlalchemy import select

from mailsvc.cli import Context
from mailsvc.cli.console import echo_json, json_option, open_session
from mailsvc.db.models import Agency
from mailsvc.errors import ConfigError
from mailsvc.outbound.dkim import DomainSigners

pass_ctx = click.make_pass_decorator(Context)


@click.group("dkim")
def dkim_group() -> None:
    """DKIM keys of our domains."""


@dkim_group.command("show-dns")
@json_option
@pass_ctx
def show_dns_cmd(ctx: Context, as_json: bool) -> None:
    """The TXT record to publish for each local domain (zone-file lines). A domain signs
    with dkim/<domain>.pem when that file exists, else with the main key."""
    s = ctx.settings
    with open_session(ctx) as session:
        domains = [
            d
            for a in session.scalars(select(Agency).where(Agency.local.is_(True)))
            for d in a.domains
        ]
    signers = DomainSigners.from_key_dir(
        s.path(s.dkim.key), s.dkim.selector, s.server.domain, domains
    )
    if signers is None:
        raise ConfigError(f"no DKIM key at {s.path(s.dkim.key)} (`mailsvc init` creates one)")
    if as_json:
        echo_json(
            [
                {
                    "domain": x.domain,
                    "name": f"{x.selector}._domainkey.{x.domain}",
                    "value": x.txt_value(),
                }
                for x in signers.signers.values()
            ],
            ctx,
        )
        return
    for line in signers.dns_records():
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(dkim_group)
