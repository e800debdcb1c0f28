"""``mailsvc serve``: run every listener and child daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from mailsvc.app import App
from mailsvc.cli import Context
from mailsvc.cli.console import require_home
from mailsvc.config import Settings, _check_hostport
from mailsvc.errors import ConfigError
from mailsvc.logs import configure_logging
from mailsvc.permissions import exposed_secrets, private_umask, restrict_home
from mailsvc.sdnotify import notify, take_socket

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http", "metrics")


def _hostport(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return _check_hostport(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def check_tls_files(settings: Settings) -> None:
    """Refuse, saying what to run, a home that lacks what ``mailsvc init`` makes and every
    start needs: the TLS certificate and key."""
    for key in ("cert", "key"):
        path = settings.path(getattr(settings.tls, key))
        if not path.is_file():
            raise ConfigError(
                f"tls.{key}: {path} does not exist (`mailsvc init` makes a self-signed "
                f"certificate; or set [tls] {key} to the path of yours)"
            )


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
    notify_socket = take_socket()  # before any child starts: Dovecot would answer it too
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
                # IMAP: the host Dovecot binds (0.0.0.0 when configured so), not the
                # loopback address our own clients use to reach it.
                host = app.dovecot.bind_hosts.get(name, host) if app.dovecot else host
                click.echo(f"{name} listening on {host}:{port}", nl=True)
        click.echo("ready")
        # systemd (Type=notify): ready only now, with every listener up.
        listening = ", ".join(f"{n} {h}:{p}" for n, (h, p) in addresses.items())
        notify(f"READY=1\nSTATUS=listening: {listening}", notify_socket)
        await stop.wait()
        notify("STOPPING=1", notify_socket)
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
    @click.option("--http", callback=_hostport, help="HTTPS password page HOST:PORT.")
    @click.option(
        "--metrics", callback=_hostport, help="Plain-HTTP /healthz and /metrics HOST:PORT."
    )
    @click.pass_obj
    def serve(obj: Context, **listen: str | None) -> None:
        """Start SMTP, submission, IMAP (Dovecot), clamd, the scheduler, HTTPS and monitoring."""
        configure_logging(obj.settings.log.format, logging.DEBUG if obj.debug else logging.INFO)
        if not obj.debug:
            # pyHanko logs a traceback for every certificate that fails validation; the
            # finding already says why.
            for noisy in ("pyhanko", "pyhanko_certvalidator"):
                logging.getLogger(noisy).setLevel(logging.ERROR)
        overrides = {k: v for k, v in listen.items() if v is not None}
        require_home(obj)
        check_tls_files(obj.settings)
        with private_umask():  # everything serve creates (database, logs, spool) is private
            check_permissions(obj.settings)
            asyncio.run(_serve(obj, overrides))
