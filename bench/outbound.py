"""Outbound throughput: officials' submissions through mailsvc to another agency's server,
vs a bare aiosmtplib sender to the same server, in the same run.

    python bench/outbound.py [--messages 1000] [--sessions 10] [--size 20000]

Ours, end to end: N submission sessions (AUTH) → every configured check → the message
and its queue row committed → 250 → the outbound worker routes by the agency directory,
STARTTLS with a verified certificate, DKIM-signs and delivers → the remote server's 250.
Baseline: N aiosmtplib sessions sending the same messages straight to the same remote
server over STARTTLS. The load's sessions run in a process of their own, and so does the
remote server (aiosmtpd on loopback, a new one for each run): the service's process
holds the service only. A message's latency runs from the start of its submission to its
arrival there. Prints msgs/s, p50/p99 and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import ssl
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from multiprocessing.connection import Connection
from pathlib import Path

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.smtp import DOMAIN, describe, prepare_home
from mailsvc.app import App
from mailsvc.config import load_settings
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.outbound.dkim import generate_private_key
from mailsvc.passwords import hash_password
from tests.tlsutil import write_self_signed

REMOTE = "stc.bench.example.vn"
RCPT = f"vanthu@{REMOTE}"
OFFICIAL = f"annv@{DOMAIN}"
PASSWORD = "Bench-Password-2026"


def make_messages(count: int, size: int) -> list[tuple[str, bytes]]:
    body = ("Nội dung văn bản gửi cơ quan khác, thử nghiệm hiệu năng. " * (size // 50 + 1))[:size]
    out = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = OFFICIAL
        msg["To"] = RCPT
        msg["Subject"] = f"Công văn số {i}"
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@{DOMAIN}>"
        msg["Date"] = "Sat, 05 Dec 2026 08:00:00 +0700"
        msg.set_content(body)
        out.append((str(msg["Message-ID"]), msg.as_bytes(policy=SMTP_POLICY)))
    return out


class Sink:
    """The other agency's server: notes when each Message-ID arrived."""

    def __init__(self, expected: int) -> None:
        self.arrived: dict[str, float] = {}
        self.expected = expected
        self.done = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        head = content.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
        for line in head.split("\r\n"):
            if line.lower().startswith("message-id:"):
                self.arrived[line.split(":", 1)[1].strip()] = time.time()
        if len(self.arrived) >= self.expected:
            self.done.set()
        return "250 2.0.0 OK"


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def blast(
    host: str,
    port: int,
    messages: list[tuple[str, bytes]],
    sessions: int,
    login: tuple[str, str] | None,
) -> dict[str, float]:
    """Send with N sessions (STARTTLS; AUTH when ``login``); start time per Message-ID."""
    pending: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        pending.put_nowait(item)
    started: dict[str, float] = {}
    retried: list[int] = []

    async def worker() -> None:
        client = aiosmtplib.SMTP(
            hostname=host, port=port, start_tls=True, tls_context=client_tls(), timeout=120
        )
        await client.connect()
        if login:
            await client.login(*login)
        try:
            while True:
                try:
                    message_id, data = pending.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started.setdefault(message_id, time.time())
                try:
                    errors, _ = await client.sendmail(OFFICIAL, [RCPT], data)
                except aiosmtplib.SMTPResponseException as exc:
                    if not 400 <= exc.code < 500:
                        raise
                    pending.put_nowait((message_id, data))  # try again later, as a client would
                    retried.append(exc.code)
                    continue
                if errors:
                    raise RuntimeError(errors)
        finally:
            await client.quit()

    await asyncio.gather(*(worker() for _ in range(sessions)))
    if retried:
        print(f"  {len(retried)} submissions answered 4xx and were sent again", file=sys.stderr)
    return started


def _blast_sync(*args: object) -> dict[str, float]:
    return asyncio.run(blast(*args))  # type: ignore[arg-type]


def blast_in_process(*args: object) -> dict[str, float]:
    """The client in its own process, so its CPU is not charged to the server's loop."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_blast_sync, *args).result()


def _sink_main(conn: Connection, cert: Path, key: Path, expected: int) -> None:
    """The other agency's server in a process of its own: its port, then the arrivals."""

    async def serve() -> None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        sink = Sink(expected)
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(sink, hostname="mx.stc.bench.example.vn", tls_context=tls),
            "127.0.0.1",
            0,
        )
        conn.send(int(server.sockets[0].getsockname()[1]))
        await sink.done.wait()
        conn.send(sink.arrived)
        await asyncio.Event().wait()  # the senders still QUIT: serve until terminated

    asyncio.run(serve())


class SinkProcess:
    """The remote server (aiosmtpd, STARTTLS) run in its own process, so that neither
    its CPU nor its event loop is shared with the sender measured (mailsvc, or the bare
    aiosmtplib sender's process)."""

    def __init__(self, cert: Path, key: Path, expected: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_sink_main, args=(child, cert, key, expected), name="bench-sink"
        )
        self._process.start()
        child.close()
        if not self._conn.poll(60):
            self.close()
            raise RuntimeError("the sink process did not start")
        self.port: int = self._conn.recv()

    async def arrivals(self, timeout: float) -> dict[str, float]:
        """Message-ID → arrival time (time.time()), once every expected message came."""
        if not await asyncio.to_thread(self._conn.poll, timeout):
            raise TimeoutError(f"the sink did not receive every message in {timeout:.0f} s")
        arrived: dict[str, float] = self._conn.recv()
        return arrived

    def close(self) -> None:
        self._process.terminate()
        self._process.join(10)


async def run(
    sink: SinkProcess, host: str, port: int, messages: list[tuple[str, bytes]],
    sessions: int, login: tuple[str, str] | None,
) -> tuple[float, list[float]]:  # fmt: skip
    started = await asyncio.to_thread(blast_in_process, host, port, messages, sessions, login)
    submitted = time.time()
    arrived = await sink.arrivals(900)
    print(
        f"  submissions took {submitted - min(started.values()):.1f} s, the last arrival "
        f"{max(arrived.values()) - submitted:.1f} s after",
        file=sys.stderr,
    )
    first = min(started.values())
    last = max(arrived.values())
    latencies = [arrived[m] - started[m] for m, _ in messages]
    return last - first, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    messages = make_messages(args.messages, args.size)
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        cert, key = work / "sink-cert.pem", work / "sink-key.pem"
        write_self_signed(cert, key, "mx.stc.bench.example.vn")

        # Baseline: a bare aiosmtplib sender straight to the remote server.
        sink = SinkProcess(cert, key, len(messages))
        try:
            base = await run(sink, "127.0.0.1", sink.port, messages, args.sessions, None)
        finally:
            sink.close()

        # Ours: submission → checks → queue → route → STARTTLS → DKIM → remote 250.
        sink = SinkProcess(cert, key, len(messages))
        try:
            home = work / "home"
            settings = prepare_home(
                home,
                Agency(
                    code="000.00.02.H99",
                    name="Sở Tài chính",
                    domains=[REMOTE],
                    route=f"127.0.0.1:{sink.port}",
                ),
            )
            with (home / "mailsvc.toml").open("a", encoding="utf-8") as config:
                config.write(
                    f'[outbound]\ntls_ca_file = "{cert}"\n'
                    "max_remote_recipients_per_hour = 1000000\n"
                )
            generate_private_key(home / "dkim" / "private.pem")
            engine = make_engine(settings.database_url)
            with make_sessionmaker(engine).begin() as session:
                session.add(
                    Mailbox(
                        address=OFFICIAL,
                        role="official",
                        must_change=False,
                        password_hash=hash_password(PASSWORD, settings.password),
                    )
                )
            engine.dispose()
            app = App(load_settings(home, environ={}))
            await app.start()
            try:
                host, port = app.addresses["submission"]
                ours = await run(sink, host, port, messages, args.sessions, (OFFICIAL, PASSWORD))
            finally:
                await app.stop()
        finally:
            sink.close()
    print(
        f"{args.messages} messages of {args.size} bytes, {args.sessions} sessions, "
        "to a remote aiosmtpd over STARTTLS"
    )
    base_rate = describe("bare aiosmtplib sender", args.messages, *base)
    ours_rate = describe("mailsvc submission→queue→remote", args.messages, *ours)
    print(f"ratio mailsvc/baseline: {ours_rate / base_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
