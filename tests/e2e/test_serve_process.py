"""`mailsvc init --demo` then `mailsvc serve` as real processes, driven by real clients:
swaks sends, imaplib reads, curl-like httpx checks health, SIGTERM stops cleanly."""

from __future__ import annotations

import grp
import imaplib
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailsvc.permissions import sqlite_files

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http", "metrics")


@pytest.fixture
def home() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mailsvc-serve-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env(home: Path, db_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MAILSVC_HOME"] = str(home)
    env["MAILSVC_DATABASE__URL"] = db_url
    env["MAILSVC_DNS__MODE"] = "off"
    env["MAILSVC_PIPELINE__WORKERS"] = "1"
    return env


def _read_until_ready(proc: subprocess.Popen[str], deadline: float) -> dict[str, tuple[str, int]]:
    addresses: dict[str, tuple[str, int]] = {}
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited early with {proc.wait()}")
        match = re.match(r"(\w+) listening on (.+):(\d+)$", line.strip())
        if match:
            addresses[match.group(1)] = (match.group(2), int(match.group(3)))
        if line.strip() == "ready":
            return addresses
    raise AssertionError("serve did not become ready")


def test_init_demo_then_serve_accepts_mail_and_stops_on_sigterm(home: Path, db_url: str) -> None:
    env = _env(home, db_url)
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailsvc",
            "init",
            "--domain",
            "demo.example.vn",
            "--hostname",
            "localhost",
            "--demo",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    login = re.search(r"(vanthu@demo\.example\.vn)", init.stdout)
    assert login, init.stdout
    password = (home / "demo-login.txt").read_text().split()[-1]
    assert (home / "mailsvc.toml").exists() and (home / "tls").is_dir()
    assert stat.S_IMODE((home / "mailsvc.toml").stat().st_mode) == 0o600

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailsvc",
            "serve",
            *(f"--{n}=127.0.0.1:0" for n in LISTENERS if n != "imaps"),
            "--imaps=0.0.0.0:0",  # reported as bound, reached on loopback
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        addresses = _read_until_ready(proc, time.monotonic() + 120)
        assert set(addresses) == set(LISTENERS)
        assert all(port > 0 for _, port in addresses.values())

        host, port = addresses["smtp"]
        swaks = subprocess.run(
            [
                "swaks",
                "--server",
                f"{host}:{port}",
                "--from",
                "cv@sender.example.vn",
                "--to",
                "vanthu@demo.example.vn",
                "--header",
                "Subject: Thu nghiem",
                "--body",
                "Kinh gui Van thu.",
                "--hide-all",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert swaks.returncode == 0, swaks.stdout + swaks.stderr

        ihost, iport = addresses["imaps"]
        assert ihost == "0.0.0.0"  # what Dovecot binds, not the loopback address we use
        ihost = "127.0.0.1"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client = imaplib.IMAP4_SSL(ihost, iport, ssl_context=context, timeout=30)
        client.login("vanthu@demo.example.vn", password)
        typ, data = client.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == 1
        client.logout()

        # Monitoring is plain HTTP on its own loopback listener, not on the HTTPS one.
        mhost, mport = addresses["metrics"]
        assert mhost == "127.0.0.1"
        health = httpx.get(f"http://{mhost}:{mport}/healthz", timeout=30)
        assert health.status_code == 200
        assert health.json()["checks"]["dovecot"] == "ok"
        metrics = httpx.get(f"http://{mhost}:{mport}/metrics", timeout=30)
        hhost, hport = addresses["http"]
        hidden = httpx.get(f"https://{hhost}:{hport}/metrics", verify=False, timeout=30)
        assert hidden.status_code == 404
        assert 'mailsvc_messages_total{action="deliver",listener="smtp"} 1.0' in metrics.text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "stopped" in out
    # HOME 0750 (as root: the mail group Dovecot's processes use); nothing for others
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    if os.geteuid() == 0:
        assert home.stat().st_gid == grp.getgrnam("vmail").gr_gid
    exposed = [
        p
        for p in [home / "mailsvc.toml", *home.glob("*.sqlite3*"), *sqlite_files(db_url)]
        if p.exists() and p.stat().st_mode & stat.S_IROTH
    ]
    assert exposed == []
    # Dovecot and clamd were stopped with us: nothing listens on the IMAP port any more.
    with pytest.raises(OSError):
        imaplib.IMAP4(*addresses["imap"], timeout=5)


def _init_demo(home: Path, env: dict[str, str]) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "mailsvc", "init", "--domain", "demo.example.vn", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr


def _serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailsvc", "serve", *(f"--{n}=127.0.0.1:0" for n in LISTENERS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_a_config_or_database_readable_by_others(home: Path, db_url: str) -> None:
    env = _env(home, db_url)
    del env["MAILSVC_DATABASE__URL"]  # the database in HOME, as init makes it
    _init_demo(home, env)
    config, database = home / "mailsvc.toml", home / "mailsvc.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for exposed in (config, database):
        exposed.chmod(0o644)
        refused = _serve_once(env)
        assert refused.returncode == 1
        assert "error: refusing to start" in refused.stderr
        assert f"{exposed} is readable by other users (mode 0644)" in refused.stderr
        assert f"chmod 600 {exposed}" in refused.stderr
        assert "ready" not in refused.stdout
        exposed.chmod(0o600)
