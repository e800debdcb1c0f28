"""SIGTERM as the README promises: a session in the middle of DATA is finished and
answered before serve exits (within server.shutdown_grace_seconds); idle sessions are
told 421; after the grace period a stalled client is told 421 too."""

from __future__ import annotations

import select
import signal
import socket
from pathlib import Path

from sqlalchemy import create_engine, text

from mailsvc.db.session import migrate
from tests.e2e.conftest import prepare_home, seed
from tests.faults.conftest import (
    CLERK,
    SENDER,
    Serve,
    clerk,
    marked,
    message,
    wait_until,
)


class SlowClient:
    """A raw SMTP client that stops in the middle of DATA until told to go on."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=60)
        self.reader = self.sock.makefile("rb")
        self.read()  # greeting

    def read(self) -> str:
        while True:
            line = self.reader.readline().decode()
            if line[3:4] != "-":
                return line.strip()

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def begin(self) -> None:
        assert self.command("EHLO slow.example.vn").startswith("250")
        assert self.command(f"MAIL FROM:<{SENDER}>").startswith("250")
        assert self.command(f"RCPT TO:<{CLERK}>").startswith("250")
        assert self.command("DATA").startswith("354")

    def closed_or_line(self, timeout: float) -> str:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return ""
        line = self.reader.readline().decode().strip()
        return line or "closed"

    def close(self) -> None:
        self.reader.close()  # the file holds the descriptor too: close both, or no FIN
        self.sock.close()


def refuses_connections(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=2):
            return False
    except OSError:
        return True


def stored_states(db: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT state FROM message"))]
    finally:
        engine.dispose()


def test_sigterm_during_data_finishes_the_message_and_answers(service_home: Path) -> None:
    db = service_home / "mailsvc.sqlite3"
    url = f"sqlite:///{db}"
    prepare_home(service_home, url)
    migrate(url)
    seed(url, clerk())
    serve = Serve(service_home, url)
    try:
        addr = serve.start()["smtp"]
        slow = SlowClient(addr)
        idle = SlowClient(addr)
        slow.begin()
        head, body = message(subject="Đang gửi khi dừng").split(b"\r\n\r\n", 1)
        slow.sock.sendall(head + b"\r\n\r\n")

        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        # The listener closes at once; the idle session is told 421 and closed.
        wait_until(lambda: refuses_connections(addr), 30, "listener closed")
        assert idle.closed_or_line(30).startswith("421 4.3.2")
        # The session in DATA is still being served: it finishes and gets its answer.
        slow.sock.sendall(body + b"\r\n.\r\n")
        assert slow.read().startswith("250 2.0.0 OK queued as")
        assert slow.closed_or_line(30).startswith("421 4.3.2")  # then goodbye
        assert serve.proc.wait(timeout=60) == 0
        assert stored_states(db) == ["delivered"]
        wait_until(lambda: not marked(serve.mark), 30, "every child stopped")
    finally:
        serve.stop_all()


def test_sigterm_grace_ends_a_stalled_data_with_421(service_home: Path) -> None:
    db = service_home / "mailsvc.sqlite3"
    url = f"sqlite:///{db}"
    prepare_home(service_home, url)
    migrate(url)
    seed(url, clerk())
    serve = Serve(service_home, url, env_extra={"MAILSVC_SERVER__SHUTDOWN_GRACE_SECONDS": "2"})
    try:
        addr = serve.start()["smtp"]
        slow = SlowClient(addr)
        slow.begin()
        slow.sock.sendall(b"Subject: stalled\r\n\r\nnever finished\r\n")
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        assert slow.closed_or_line(30).startswith("421 4.3.2")
        assert serve.proc.wait(timeout=60) == 0
        assert stored_states(db) == []  # nothing acknowledged, nothing kept
    finally:
        serve.stop_all()
