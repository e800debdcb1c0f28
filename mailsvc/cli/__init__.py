"""The admin command line. Each sub-module adds its commands to the group in ``register``.

The sub-modules are imported when their command is asked for, not with this package:
``mailsvc serve`` imports the service, ``mailsvc mailbox`` the database, and the worker
pool's processes, which import the program's main module again (multiprocessing's
``forkserver`` re-runs the ``mailsvc`` script in every worker), import only click and
the settings here instead of every command's dependencies.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from mailsvc.cli.printable import printable_stdout
from mailsvc.config import Settings, load_settings, one_line_path
from mailsvc.errors import MailsvcError

# Explicit list of command modules.
COMMAND_MODULES = (
    "init",
    "serve",
    "mailbox",
    "agency",
    "audit",
    "trust",
    "verify",
    "inspect",
    "register",
    "checks",
    "checks_report",
    "jobs",
    "backup",
    "external",
    "dkim",
    "queue",
    "outgoing",
)
# The top-level commands each module adds (a module may add to another's group:
# checks_report adds ``report`` to ``checks``), so that a command imports only its own.
MODULE_COMMANDS = {
    "backup": ("backup", "restore"),
    "checks_report": ("checks",),
}


class Context:
    """What every command receives: the home directory and lazily loaded settings."""

    def __init__(self, home: Path, debug: bool) -> None:
        self.home = home
        self.debug = debug
        self._settings: Settings | None = None

    def set_home(self, home: Path) -> None:
        """``--home`` given after a subcommand: it wins over the one before (or the env)."""
        self.home = home.resolve()
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.home)
        return self._settings


def _modules_of(command: str) -> list[str]:
    return [m for m in COMMAND_MODULES if command in MODULE_COMMANDS.get(m, (m,))]


class _Group(click.Group):
    """Turns known errors into one line and a non-zero exit; tracebacks only with --debug.

    Loads the command modules on demand (``get_command``); ``load_all`` loads every one
    (``commands`` then holds them all)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def load(self, modules: list[str]) -> None:
        """Import the command ``modules`` not imported yet and add their commands."""
        for name in modules:
            if name in self._loaded:
                continue
            self._loaded.add(name)
            try:
                module = importlib.import_module(f"mailsvc.cli.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"mailsvc.cli.{name}":
                    raise
                continue
            module.register(self)
        for command in self.commands.values():
            _accept_home_everywhere(command)

    def load_all(self) -> None:
        self.load(list(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load(_modules_of(cmd_name))
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> object:
        try:
            with printable_stdout():
                return super().invoke(ctx)
        except MailsvcError as exc:
            obj = ctx.obj
            if isinstance(obj, Context) and obj.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MAILSVC_HOME",
    default=Path("./mailsvc-home"),
    show_default=True,
    callback=lambda _ctx, _param, value: _one_line_home(value),
    help="Service home directory (config, database, mail). Env: MAILSVC_HOME.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="mailsvc")
@click.pass_context
def main(ctx: click.Context, home: Path, debug: bool) -> None:
    """mailsvc: secure official-document mail service."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(home.resolve(), debug)


def _one_line_home(value: Path) -> Path:
    """Refuse, before anything is created, a home that cannot go into the daemons'
    configuration files (its path is written there as the rest of one line)."""
    try:
        return one_line_path(value)
    except ValueError as exc:
        raise click.BadParameter(f"{str(value)!r}: {exc}", param_hint="'--home'") from None


def _home_after_subcommand(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        _one_line_home(value)
        obj = ctx.find_object(Context)
        if obj is not None:
            obj.set_home(value)


def _accept_home_everywhere(command: click.Command) -> None:
    """``mailsvc init --home DIR`` as well as ``mailsvc --home DIR init``: every subcommand
    (and sub-subcommand) takes ``--home`` too. No envvar here: MAILSVC_HOME is read once,
    by the top-level option, so an explicit ``--home`` always wins."""
    if not any(isinstance(p, click.Option) and "--home" in p.opts for p in command.params):
        command.params.append(
            click.Option(
                ["--home"],
                type=click.Path(file_okay=False, path_type=Path),
                expose_value=False,
                is_eager=True,
                callback=_home_after_subcommand,
                help="Service home directory (same as `mailsvc --home DIR`).",
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_home_everywhere(sub)
