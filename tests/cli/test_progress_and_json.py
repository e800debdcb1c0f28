"""Long commands: a progress bar on a terminal only, and `--json` on backup, restore, init
and jobs run (one JSON document on stdout, nothing else)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Invoke


def test_init_json(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "mailsvc", "init", "--home", str(home), "--domain",
         "stttt.example.gov.vn", "--database-url", db_url, "--demo", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["config"] == {"path": str(home / "mailsvc.toml"), "created": True}
    assert out["tls"]["created"] is True and out["dkim"]["dns_record"].startswith("mailsvc.")
    assert out["demo"]["address"] == "vanthu@stttt.example.gov.vn" and out["demo"]["password"]
    again = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mailsvc", "init", "--home", str(home), "--domain",
             "stttt.example.gov.vn", "--json"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    )  # fmt: skip
    assert again["config"]["created"] is False and again["tls"]["created"] is False


def test_backup_restore_and_jobs_run_json(admin_cli: Invoke, admin_home: Path) -> None:
    # restore refuses while anything answers on the configured listeners: point them at a
    # closed port, not at a demo another process may run on the defaults.
    config = admin_home / "mailsvc.toml"
    closed = "\n".join(
        f'{n} = "127.0.0.1:9"'
        for n in ("smtp", "submission", "submissions", "imap", "imaps", "http", "metrics")
    )
    config.write_text(config.read_text(encoding="utf-8") + f"[listen]\n{closed}\n")
    backup = json.loads(admin_cli("backup", "--json").stdout)
    archive = Path(backup["path"])
    assert archive.is_file() and backup["size"] == archive.stat().st_size
    assert len(backup["sha256"]) == 64 and backup["created_at"].endswith("+07:00")
    verified = json.loads(admin_cli("restore", "--verify-only", "--json", str(archive)).stdout)
    assert verified["verified"] is True and verified["entries"] > 0
    refused = admin_cli("restore", "--json", str(archive), ok=False)
    assert refused.exit_code == 1 and "--json needs --yes" in refused.output
    run = json.loads(admin_cli("jobs", "run", "retention-purge", "--json").stdout)
    assert run["job"] == "retention-purge" and run["outcome"] == "ok"
    assert run["scheduled_for"].endswith("+07:00")


def _backup(home: Path, db_url: str, *, terminal: bool) -> tuple[int, str, bytes]:
    return _run(home, db_url, "backup", terminal=terminal)


def _run(home: Path, db_url: str, *args: str, terminal: bool) -> tuple[int, str, bytes]:
    env = dict(os.environ, MAILSVC_DATABASE__URL=db_url)
    argv = [sys.executable, "-m", "mailsvc", *args, "--home", str(home)]
    if not terminal:
        done = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)
        return done.returncode, done.stdout.decode(), done.stderr
    controller, terminal_fd = pty.openpty()
    try:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=terminal_fd, env=env, timeout=120, check=False
        )
        os.close(terminal_fd)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    return done.returncode, done.stdout.decode(), b"".join(chunks)


def test_progress_bar_on_a_terminal_only(admin_cli: Invoke, admin_home: Path, db_url: str) -> None:
    admin_cli("mailbox", "list")  # the database exists
    mail = admin_home / "mail" / "example" / "Maildir" / "cur"
    mail.mkdir(parents=True)
    for n in range(40):
        (mail / f"{n}.eml").write_bytes(b"Subject: x\r\n\r\nx\r\n")
    code, out, err = _backup(admin_home, db_url, terminal=True)
    assert code == 0 and "archive" in out
    assert re.search(rb"backup  \[#+-*\]  \d+/\d+ +\d+%", err), err  # label, bar, count
    code, out, err = _backup(admin_home, db_url, terminal=False)
    assert code == 0 and "archive" in out and err == b""  # silent when not a terminal
    # Restore (and --verify-only) show the archive being read the same way.
    archive = re.search(r"archive\s+(\S+\.tar\.gz)", out)
    assert archive is not None, out
    code, out, err = _run(
        admin_home, db_url, "restore", "--verify-only", archive.group(1), terminal=True
    )
    assert code == 0 and "verified" in out
    assert re.search(rb"verify  \[#+-*\]  \d+/\d+ +\d+%", err), err
    code, out, err = _run(admin_home, db_url, "restore", "--yes", archive.group(1), terminal=True)
    assert code == 0 and "verified" in out, (out, err)
    assert re.search(rb"restore  \[#+-*\]  \d+/\d+ +\d+%", err), err
    code, out, err = _run(admin_home, db_url, "restore", "--yes", archive.group(1), terminal=False)
    assert code == 0 and err == b""
