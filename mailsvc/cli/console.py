"""What the admin commands share: a database session per command, the acting
administrator's name, tables, JSON output and times shown in Vietnam's zone."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.cli import Context
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.errors import ConfigError, MailsvcError

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def require_home(ctx: Context) -> None:
    """Refuse, saying what to run, a home directory that does not exist (before a command
    that would create files in it fails half-way)."""
    if not ctx.home.is_dir():
        raise ConfigError(
            f"{ctx.home} does not exist: run `mailsvc init --home {ctx.home} --domain DOMAIN` first"
        )


@contextlib.contextmanager
def open_database(ctx: Context) -> Iterator[sessionmaker[Session]]:
    """The database for one command, as a session factory; a database error becomes one
    line that names the home (unless --debug)."""
    engine = make_engine(ctx.settings.database_url)
    try:
        yield make_sessionmaker(engine)
    except (OperationalError, ProgrammingError) as exc:
        if ctx.debug:
            raise
        raise MailsvcError(
            f"database error ({exc.orig.__class__.__name__}: "
            f"{str(exc.orig).splitlines()[0]}); has `mailsvc init` been run for {ctx.home}?"
        ) from exc
    finally:
        engine.dispose()


@contextlib.contextmanager
def open_session(ctx: Context) -> Iterator[Session]:
    """One session for one command. The command commits; anything else rolls back."""
    with open_database(ctx) as sessions, sessions() as session:
        yield session


def display_zone(ctx: Context) -> ZoneInfo:
    """The configured zone for showing times (Vietnam's when the setting is unusable)."""
    try:
        return ZoneInfo(ctx.settings.server.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Ho_Chi_Minh")


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise MailsvcError(f"{option}: expected a date YYYY-MM-DD, got {value!r}") from exc


def parse_optional_day(value: str | None, option: str) -> date | None:
    return None if value is None else parse_day(value, option)


def actor() -> str:
    """Who is acting, for the audit log: ``cli:<os user>`` (or MAILSVC_ACTOR if set)."""
    name = os.environ.get("MAILSVC_ACTOR")
    if name:
        return name
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def show_time(value: datetime | None, ctx: Context) -> str:
    if value is None:
        return ""
    return value.astimezone(display_zone(ctx)).isoformat(timespec="seconds")


def to_json(value: Any, ctx: Context) -> Any:
    if isinstance(value, datetime):
        return show_time(value, ctx)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, ctx) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, ctx) for v in value]
    return value


def echo_json(value: Any, ctx: Context) -> None:
    click.echo(json.dumps(to_json(value, ctx), ensure_ascii=False, indent=2))


def _cell(value: Any, ctx: Context) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return show_time(value, ctx)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _width(text: str) -> int:
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def echo_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], ctx: Context
) -> None:
    """Columns are (key, heading). Prints '(none)' for no rows."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(key), ctx) for key, _ in columns] for row in rows]
    headings = [heading for _, heading in columns]
    widths = [max(_width(h), *(_width(r[i]) for r in cells)) for i, h in enumerate(headings)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True))

    click.echo(line(headings).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo(line(r).rstrip())


def echo_record(record: Mapping[str, Any], ctx: Context) -> None:
    """A key: value block for `show` commands."""
    width = max(len(k) for k in record)
    for key, value in record.items():
        if isinstance(value, Mapping):
            click.echo(f"{key:<{width}}  " + ("" if value else "(none)"))
            for k, v in value.items():
                click.echo(f"  {k}: {_cell(v, ctx)}")
        else:
            click.echo(f"{key:<{width}}  {_cell(value, ctx)}")


@contextlib.contextmanager
def progress(length: int, label: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar with counts and ETA on the terminal (stderr), for long commands;
    silent when stderr is not a terminal (cron, pipes, tests) or ``enabled`` is False.
    Yields ``advance(n)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(
        length=max(length, 1),
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_percent=True,
        show_eta=True,
        width=30,
    ) as bar:
        yield bar.update
