"""The README, as a newcomer types it: `mailsvc init --home DIR ...` (the option after the
subcommand), `mailsvc serve --home DIR`, the swaks example delivered and read over IMAP, and
a sender under a directory agency's domain refused for its origin (550 5.7.26), not as spam.
The same functions drive scripts/run-demo and the wheel in .ci/fresh-install."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readme_demo import (
    ANY_PORT,
    check_readme_mail,
    readme_swaks,
    send_with_swaks,
    start,
)


@pytest.fixture
def home() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mailsvc-readme-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MAILSVC_HOME"}
    env["MAILSVC_DATABASE__URL"] = db_url
    env["MAILSVC_PIPELINE__WORKERS"] = "1"
    return env


def test_readme_example_mail_is_delivered_and_origin_failure_says_so(
    home: Path, db_url: str
) -> None:
    env = _env(db_url)
    init = start(
        [sys.executable, "-m", "mailsvc", "init", "--home", str(home), "--domain", "example.vn",
         "--hostname", "localhost", "--demo"],
        env,
    )  # fmt: skip
    assert init.wait() == 0, init.lines
    assert (home / "mailsvc.toml").is_file()
    served = start([sys.executable, "-m", "mailsvc", "serve", "--home", str(home), *ANY_PORT], env)
    served.lines.extend(init.lines)
    try:
        served.wait_ready(timeout=120)
        assert check_readme_mail(served) == "Thử nghiệm"
        # The README's second example: a subdomain of the demo's own agency, unauthenticated.
        refused = send_with_swaks(
            readme_swaks(served.addresses["smtp"], sender="cv@sender.example.vn")
        )
        assert (
            "<** 550 5.7.26 sender not authenticated for sender.example.vn: "
            "no aligned DKIM or SPF pass for sender.example.vn" in refused.stdout
        ), refused.stdout
        assert "spam" not in refused.stdout.split("<** ", 1)[1].splitlines()[0]
    finally:
        assert served.stop() == 0, served.lines
    assert "stopped" in served.lines


def test_home_is_accepted_after_every_subcommand(home: Path, db_url: str) -> None:
    """`--home` before or after the subcommand, on every command; after wins over the env."""
    from click import Group

    from mailsvc.cli import main

    def walk(group: Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, command in group.commands.items():
            yield (*path, name)
            if isinstance(command, Group):
                yield from walk(command, (*path, name))

    main.load_all()  # the command modules are imported on demand
    commands = list(walk(main, ()))
    assert ("init",) in commands and ("mailbox", "list") in commands
    for path in commands:
        command = main
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        assert any("--home" in p.opts for p in command.params), path

    env = _env(db_url)
    env["MAILSVC_HOME"] = str(home.parent / "elsewhere")
    init = start(
        [sys.executable, "-m", "mailsvc", "init", "--domain", "example.vn", "--demo",
         "--home", str(home)],
        env,
    )  # fmt: skip
    assert init.wait() == 0, init.lines
    listed = start(
        [sys.executable, "-m", "mailsvc", "mailbox", "list", "--json", "--home", str(home)], env
    )
    assert listed.wait() == 0, listed.lines
    assert "vanthu@example.vn" in "\n".join(listed.lines)
    assert not (home.parent / "elsewhere").exists()
