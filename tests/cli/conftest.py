"""A home directory whose config points at the test database, and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.cli import main
from mailsvc.db.session import make_engine, make_sessionmaker

DOMAIN = "stttt.example.gov.vn"

Invoke = Callable[..., Result]


@pytest.fixture
def admin_home(tmp_path: Path, db_url: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailsvc.toml").write_text(
        f'[server]\ndomain = "{DOMAIN}"\nhostname = "mail.{DOMAIN}"\n'
        f"[database]\nurl = {json.dumps(db_url)}\n"
        # Cheaper Argon2id parameters keep the suite fast; the format is the same.
        "[password]\nargon2_memory_kib = 8192\nargon2_time_cost = 1\n",
        encoding="utf-8",
    )
    return home


@pytest.fixture
def admin_cli(admin_home: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, ok: bool = True) -> Result:
        result = runner.invoke(
            main,
            ["--home", str(admin_home), *args],
            input=input,
            env={"MAILSVC_ACTOR": "cli:tester"},
        )
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture
def db_sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Open a short session per check: on SQLite every transaction takes the write lock."""
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()
