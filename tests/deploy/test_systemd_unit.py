"""deploy/mailsvc.service: `systemd-analyze verify` finds nothing to say, the hardening is
there, and `mailsvc serve` speaks sd_notify (READY=1 once every listener is up, STOPPING=1
on SIGTERM) to the NOTIFY_SOCKET it is given."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsvc.sdnotify import notify
from tests.readme_demo import ANY_PORT, start

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "mailsvc.service"


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    # verify checks that ExecStart is executable: point it at this machine's mailsvc.
    executable = shutil.which("mailsvc") or str(Path(sys.executable).parent / "mailsvc")
    text = UNIT.read_text(encoding="utf-8")
    assert "ExecStart=/opt/mailsvc/venv/bin/mailsvc serve" in text
    unit = tmp_path / "mailsvc.service"
    unit.write_text(text.replace("/opt/mailsvc/venv/bin/mailsvc", executable), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result


def test_unit_is_hardened() -> None:
    directives = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    expected = {
        "Type": "notify",
        "User": "mailsvc",
        "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/srv/mailsvc",
        "PrivateTmp": "yes",
        "Environment": "MAILSVC_HOME=/srv/mailsvc",
    }
    assert {k: directives.get(k) for k in expected} == expected


def test_notify_reaches_a_path_and_an_abstract_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert notify("READY=1", str(path))
        assert server.recv(4096) == b"READY=1"
    name = f"mailsvc-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        assert notify("STOPPING=1", "@" + name)
        assert server.recv(4096) == b"STOPPING=1"
    assert not notify("READY=1", "")


@pytest.fixture
def home() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mailsvc-notify-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_serve_says_ready_after_its_listeners_and_stopping_on_sigterm(
    home: Path, db_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAILSVC_HOME"}
    env |= {"MAILSVC_DATABASE__URL": db_url, "MAILSVC_PIPELINE__WORKERS": "1"}
    init = start([sys.executable, "-m", "mailsvc", "init", "--home", str(home), "--domain",
                  "example.vn", "--hostname", "localhost"], env)  # fmt: skip
    assert init.wait() == 0, init.lines
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(120)
        served = start(
            [sys.executable, "-m", "mailsvc", "serve", "--home", str(home), *ANY_PORT],
            env | {"NOTIFY_SOCKET": str(path)},
        )
        try:
            served.wait_ready(timeout=120)
            # The only datagram is ours: children (Dovecot sends its own READY=1 when it
            # sees NOTIFY_SOCKET) never get the variable.
            ready = listener.recv(4096).decode()
            # Sent after the "ready" line, naming every listener it had opened.
            assert ready.startswith("READY=1\nSTATUS=listening: ")
            for name in ("smtp", "submission", "submissions", "imap", "imaps", "http", "metrics"):
                assert f"{name} 127.0.0.1:" in ready
        finally:
            code = served.stop()
        assert listener.recv(4096) == b"STOPPING=1"
    assert code == 0, served.lines


def test_logrotate_file_parses(tmp_path: Path) -> None:
    # The user exists on a deployed host; here root stands in for it.
    text = (REPO / "deploy" / "mailsvc.logrotate").read_text(encoding="utf-8")
    conf = tmp_path / "mailsvc"
    conf.write_text(text.replace("su mailsvc mailsvc", "su root root"), encoding="utf-8")
    result = subprocess.run(
        ["logrotate", "--debug", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "error" not in (result.stdout + result.stderr).lower()
