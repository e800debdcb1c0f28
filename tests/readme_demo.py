"""The README's promises, driven from outside: its first command (or an installed wheel)
reaches `ready`, its swaks example is delivered and read back over IMAP.

Standard library only, so CI can run it with Debian's own /usr/bin/python3 before anything
is installed:

    /usr/bin/python3 tests/readme_demo.py demo  --venv DIR --home DIR
    /usr/bin/python3 tests/readme_demo.py wheel --venv DIR --home DIR

``demo`` runs ``scripts/run-demo`` (the README's first command: apt packages, a venv made
from /usr/bin/python3, init, serve); ``wheel`` builds the wheel, installs it into a fresh
venv and runs ``mailsvc init`` and ``mailsvc serve`` from there. Both then send the README's
example mail with swaks and read it back over IMAP (STARTTLS), and stop the server with
SIGTERM. tests/e2e/test_readme.py uses the same functions under pytest.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import imaplib
import os
import re
import selectors
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_SMTP = "127.0.0.1:2525"
ANY_PORT = [
    "--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--submissions", "127.0.0.1:0",
    "--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--http", "127.0.0.1:0",
    "--metrics", "127.0.0.1:0",
]  # fmt: skip


def readme_swaks(smtp: tuple[str, int], sender: str | None = None) -> list[str]:
    """The README's swaks example as argv, pointed at ``smtp`` (and ``sender`` if given)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```sh\n(swaks --server .*?)\n```", text, re.S)
    if match is None:
        raise AssertionError("README.md has no ```sh block starting with `swaks --server`")
    argv = shlex.split(match.group(1).replace("\\\n", " "))
    argv[argv.index("--server") + 1] = f"{smtp[0]}:{smtp[1]}"
    if sender is not None:
        argv[argv.index("--from") + 1] = sender
    return argv


def argv_value(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def send_with_swaks(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def read_inbox(imap: tuple[str, int], user: str, password: str) -> list[email.message.Message]:
    """Every message in ``user``'s INBOX, over IMAP with STARTTLS (self-signed certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = imaplib.IMAP4(imap[0], imap[1], timeout=30)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.starttls(ssl_context=context)
        client.login(user, password)
        client.select("INBOX", readonly=True)
        _, data = client.uid("SEARCH", "ALL")
        found = []
        for uid in data[0].split():
            _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = parts[0][1]
            found.append(email.message_from_bytes(raw, policy=email.policy.default))
        return found
    finally:
        client.logout()


@dataclass
class Served:
    """A running `mailsvc serve` (or run-demo) and what it printed."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)

    def login(self) -> tuple[str, str]:
        for line in self.lines:
            match = re.search(r"login: (\S+)\s+password: (\S+)", line)
            if match:
                return match.group(1), match.group(2)
        raise AssertionError("no demo login printed:\n" + "\n".join(self.lines))

    def wait_ready(self, timeout: float) -> None:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(
                    f"exited with {self.process.wait()} before ready:\n" + "\n".join(self.lines)
                )
            line = line.rstrip("\n")
            self.lines.append(line)
            match = re.match(r"(\w+) listening on (.+):(\d+)$", line.strip())
            if match:
                self.addresses[match.group(1)] = (match.group(2), int(match.group(3)))
            if line.strip() == "ready":
                return
        raise AssertionError("not ready in time:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (if still running), then wait and collect the rest of the output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> int:
        out, _ = self.process.communicate(timeout=timeout)
        self.lines.extend(out.splitlines())
        return self.process.returncode


def start(argv: list[str], env: dict[str, str]) -> Served:
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    return Served(process)


def check_readme_mail(served: Served) -> str:
    """Send the README's example and find it in the demo clerk's INBOX; returns its subject."""
    argv = readme_swaks(served.addresses["smtp"])
    result = send_with_swaks(argv)
    if "<-  250 2.0.0 OK" not in result.stdout:
        raise AssertionError("README example not accepted:\n" + result.stdout + result.stderr)
    user, password = served.login()
    if argv_value(argv, "--to") != user:
        raise AssertionError(f"README example goes to {argv_value(argv, '--to')}, demo is {user}")
    subject = argv_value(argv, "--header").removeprefix("Subject: ")
    # Delivery into Dovecot is done before the 250: IMAP must show it at once.
    messages = read_inbox(served.addresses["imap"], user, password)
    if any(str(m["Subject"]) == subject for m in messages):
        return subject
    raise AssertionError(f"README example {subject!r} not in {user}'s INBOX")


def run_demo(venv: Path, home: Path) -> None:
    env = dict(os.environ, MAILSVC_VENV=str(venv), MAILSVC_HOME=str(home))
    served = start([str(REPO / "scripts/run-demo"), *ANY_PORT], env)
    try:
        served.wait_ready(timeout=1800)  # the first run installs packages
        subject = check_readme_mail(served)
        print(f"run-demo: ready; README mail {subject!r} delivered and read over IMAP")
    finally:
        code = served.stop()
    if code != 0 or "stopped" not in served.lines:
        raise AssertionError(f"run-demo did not stop cleanly ({code}):\n" + "\n".join(served.lines))


def run_wheel(venv: Path, home: Path) -> None:
    python = os.environ.get("MAILSVC_PYTHON", "/usr/bin/python3")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, "."],
            check=True,
            cwd=REPO,
        )
        (wheel,) = Path(dist).glob("mailsvc-*.whl")
        subprocess.run([*pip, "-c", str(REPO / "constraints.txt"), str(wheel)], check=True)
    mailsvc = str(venv / "bin/mailsvc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSVC_")}
    env["PYTHONPATH"] = ""  # the installed wheel, never this checkout
    init = subprocess.run(
        [mailsvc, "init", "--home", str(home), "--domain", "example.vn", "--demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
    )
    if init.returncode != 0:
        raise AssertionError("wheel: init failed:\n" + init.stdout + init.stderr)
    served = start([mailsvc, "serve", "--home", str(home), *ANY_PORT], env)
    served.lines.extend(init.stdout.splitlines())
    try:
        served.wait_ready(timeout=300)
        subject = check_readme_mail(served)
        print(f"wheel {wheel.name}: init, serve ready; README mail {subject!r} read over IMAP")
    finally:
        code = served.stop()
    if code != 0:
        raise AssertionError(f"wheel serve exited {code}:\n" + "\n".join(served.lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("demo", "wheel"))
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    (run_demo if args.mode == "demo" else run_wheel)(args.venv, args.home)


if __name__ == "__main__":
    sys.exit(main())
