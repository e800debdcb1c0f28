"""LMTP delivery into a private Dovecot: N messages of SIZE bytes, pooled client vs one
connection per message. Run as root: python bench/lmtp.py [--messages 2000] [--size 20000]
[--pool 10] [--rounds 1]. Prints msgs/s for both. Not a test.

With ``--rounds R`` the pooled client delivers R rounds of N messages into the same
mailbox, and each round prints Dovecot's CPU per delivery (its processes, from /proc)
beside the first round's: what a delivery costs Dovecot as the mailbox grows."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from mailsvc.config import PasswordSection, Settings
from mailsvc.db.models import Mailbox
from mailsvc.db.session import make_engine, migrate
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.passwords import hash_password

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import snapshot

RCPT = "bench@bench.vn"


def dovecot_cpu() -> float:
    """CPU seconds of this process's Dovecot children so far (reaped ones included)."""
    procs = snapshot(os.getpid(), set()).values()
    return sum(p.cpu for p in procs if p.group == "Dovecot")


async def deliver_all(client: LmtpClient, queue: list[bytes], rcpt: str = RCPT) -> None:
    """One of the pooled client's concurrent senders: deliver from ``queue`` until empty."""
    while queue:
        await client.deliver(rcpt, queue.pop())


def positive(text: str) -> int:
    """argparse type: an integer of at least 1 (0 rounds or messages measure nothing)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def body(size: int, i: int) -> bytes:
    head = f"From: a@b.vn\r\nTo: bench@bench.vn\r\nSubject: {i}\r\nMessage-ID: <{i}@b>\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    return head.encode() + line * (size // len(line))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=positive, default=2000)
    ap.add_argument("--size", type=positive, default=20_000)
    ap.add_argument("--pool", type=positive, default=10)
    ap.add_argument("--rounds", type=positive, default=1)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mailsvc-bench-", dir="/tmp"))
    try:
        (home / "tls").mkdir()
        subprocess.run(  # noqa: ASYNC221 - set-up before timing
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(home / "tls/key.pem"),
                "-out",
                str(home / "tls/cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        url = f"sqlite:///{home / 'mailsvc.sqlite3'}"
        migrate(url)
        with Session(make_engine(url)) as s, s.begin():
            s.add(
                Mailbox(
                    address=RCPT,
                    must_change=False,
                    password_hash=hash_password("x" * 12, PasswordSection()),
                    created_at=datetime.now(UTC),
                )
            )
        settings = Settings(
            home=home, database={"url": url}, listen={"imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"}
        )
        svc = DovecotService(settings)
        await svc.start()
        msgs = [body(args.size, i) for i in range(args.messages)]

        client = LmtpClient(svc.lmtp_path, pool_size=args.pool)
        first = 0.0
        for round_ in range(1, args.rounds + 1):
            queue = list(msgs)
            cpu0 = dovecot_cpu()
            t0 = time.perf_counter()

            await asyncio.gather(*(deliver_all(client, queue) for _ in range(args.pool)))
            pooled = args.messages / (time.perf_counter() - t0)
            per = (dovecot_cpu() - cpu0) / args.messages * 1000
            first = first or per
            if args.rounds > 1:
                print(
                    f"round {round_:3d}: mailbox {round_ * args.messages:7d} messages, "
                    f"{pooled:6.0f} msgs/s, Dovecot CPU {per:.2f} ms per delivery "
                    f"({per / first:.2f} of the first round's)",
                    flush=True,
                )
        await client.close()

        def per_connection() -> float:
            t = time.perf_counter()
            for m in msgs:
                with smtplib.LMTP(str(svc.lmtp_path)) as lmtp:
                    lmtp.sendmail("", [RCPT], m)
            return args.messages / (time.perf_counter() - t)

        single = await asyncio.to_thread(per_connection)
        print(
            f"LMTP {args.messages} x {args.size} B: mailsvc LmtpClient (pool {args.pool}) "
            f"{pooled:.0f} msgs/s; smtplib.LMTP connection per message {single:.0f} msgs/s; "
            f"ratio {pooled / single:.2f}"
        )
        await svc.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
