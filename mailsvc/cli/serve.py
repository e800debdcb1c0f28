"""``mailsvc serve``: run every listener and child daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from mailsvc.app import App
from mailsvc.cli import Context
from mailsvc.config import Settings, _check_hostport
from mailsvc.errors import ConfigError
from mailsvc.permissions import exposed_secrets, private_umask, restrict_home

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http")


def _hostport(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _check_hostport(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def check_permissions(settings: Settings) -> None:
    """Refuse to serve a home whose config or database other users can read."""
    problems = exposed_secrets(settings)
    if problems:
        raise ConfigError(
            "refusing to start: "
            + "; ".join(problems)
            + ". The database holds password hashes, the register and the audit log, the"
            " config can hold the database password. Run: chmod 600 "
            + " ".join(p.split(" is readable")[0] for p in problems)
            + " (and consider changing the passwords others could have read)"
        )
    restrict_home(settings.home)


async def _serve(obj: Context, overrides: dict[str, str]) -> None:
    app = App(obj.settings, listen=overrides)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        addresses = await app.start()
        for name in LISTENERS:
            if name in addresses:
                host, port = addresses[name]
                click.echo(f"{name} listening on {host}:{port}", nl=True)
        click.echo("ready")
        await stop.wait()
        click.echo("stopping: finishing messages in flight")
    finally:
        await app.stop()
    click.echo("stopped")


def register(group: click.Group) -> None:
    @group.command()
    @click.option("--smtp", callback=_hostport, help="Inbound SMTP HOST:PORT (port 0: any).")
    @click.option("--submission", callback=_hostport, help="Submission (STARTTLS) HOST:PORT.")
    @click.option("--submissions", callback=_hostport, help="Submission (implicit TLS) HOST:PORT.")
    @click.option("--imap", callback=_hostport, help="IMAP (STARTTLS) HOST:PORT.")
    @click.option("--imaps", callback=_hostport, help="IMAPS HOST:PORT.")
    @click.option("--http", callback=_hostport, help="HTTPS health/metrics/password HOST:PORT.")
    @click.pass_obj
    def serve(obj: Context, **listen: str | None) -> None:
        """Start SMTP, submission, IMAP (Dovecot), clamd, the scheduler and HTTPS."""
        if not obj.debug:
            logging.getLogger().setLevel(logging.INFO)
            # pyHanko logs a traceback for every certificate that fails validation; the
            # finding already says why.
            for noisy in ("pyhanko", "pyhanko_certvalidator"):
                logging.getLogger(noisy).setLevel(logging.ERROR)
        overrides = {k: v for k, v in listen.items() if v is not None}
        with private_umask():  # everything serve creates (database, logs, spool) is private
            check_permissions(obj.settings)
            asyncio.run(_serve(obj, overrides))
