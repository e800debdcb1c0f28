"""SMTP throughput: our full path vs a bare aiosmtpd + Maildir/fsync baseline, same run.

    python bench/smtp.py [--messages 2000] [--sessions 10] [--size 20000]

Our path: every configured stage, blob fsync, database commit, LMTP into Dovecot,
then 250. Baseline: aiosmtpd whose handler writes the message into a Maildir with
one open/write/fsync/rename. Both receive the same messages from the same client (N
concurrent SMTP sessions from a plain stream client, in its own process) on loopback.
Prints msgs/s and the ratio, then the CPU time per message of each process group of the
service (SMTP process, worker pool, clamd, Dovecot) and its peak RSS under the load
(bench/service.py). The messages wait in files and the client reads them, so they are not
counted in the service's memory. Last, the budget: what the SMTP process may spend per
message for 0.35 of the baseline, with the pool, clamd and Dovecot costing what they did
(negative: those alone cost more than the aim leaves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import ServiceMonitor, release_memory

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from mailsvc.app import App
    from mailsvc.config import Settings
    from mailsvc.db.models import Agency

# The service's modules are imported in the functions that use them, not here: this
# module is the main module of the bench, and the worker pool's fork server imports the
# main module (mailsvc.documents.pool.PRELOAD), as does the client's process. At the top
# they would put the whole service (SQLAlchemy, Alembic, the app) into every worker.

DOMAIN = "bench.example.vn"
RCPT = f"vanthu@{DOMAIN}"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


def make_messages(count: int, size: int) -> list[bytes]:
    body = ("Nội dung văn bản thử nghiệm hiệu năng. " * (size // 40 + 1))[:size]
    out = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = "cv@sender.example.vn"
        msg["To"] = RCPT
        msg["Subject"] = f"Báo cáo số {i}"
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.example.vn>"
        msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
        msg.set_content(body)
        out.append(msg.as_bytes(policy=SMTP_POLICY))
    return out


def save_messages(directory: Path, messages: Sequence[bytes]) -> Path:
    """Write ``messages`` into ``directory``, one file each, in order (see load_messages)."""
    directory.mkdir(parents=True)
    for i, data in enumerate(messages):
        (directory / f"{i:07d}.eml").write_bytes(data)
    return directory


def load_messages(directory: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(directory.glob("*.eml"))]


def blast_in_process(
    host: str,
    port: int,
    messages: Sequence[bytes] | Path,
    sessions: int,
    sender: str = "cv@sender.example.vn",
    rcpt: str = RCPT,
    monitor: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
) -> tuple[float, list[float]]:
    """Run the SMTP client in its own process, like Postfix's smtp-source, so the
    client's CPU is not charged to the server's event loop. ``messages``: the bytes, or a
    directory written by save_messages (read by the client: the server's process never
    holds them). ``monitor(pid)``, given the client's pid once its process has started (and
    imported what it needs), is entered around the load only: a monitor that watches the
    service never counts the client, not even in its first samples."""
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pid = pool.submit(os.getpid).result()
        with monitor(pid) if monitor is not None else contextlib.nullcontext():
            return pool.submit(_blast_sync, host, port, messages, sessions, sender, rcpt).result()


def _blast_sync(
    host: str, port: int, messages: Sequence[bytes] | Path, sessions: int, sender: str, rcpt: str
) -> tuple[float, list[float]]:
    data = load_messages(messages) if isinstance(messages, Path) else list(messages)
    return asyncio.run(blast(host, port, data, sessions, sender, rcpt))


def data_payload(message: bytes) -> bytes:
    """What a client writes after DATA's 354: CRLF line endings, lines starting with a
    dot doubled (RFC 5321, 4.5.2), the end-of-data line. Prepared before the load, as a
    queue's sender holds its messages ready, so the client spends its CPU on the sessions."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    stuffed = (b"." + line if line.startswith(b".") else line for line in lines)
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


class SmtpReplyError(RuntimeError):
    pass


async def _reply(reader: asyncio.StreamReader, expected: int, command: str) -> None:
    """Read one reply (its continuation lines too); raise unless its code is ``expected``."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpReplyError(f"{command}: connection closed")
        lines.append(line.decode("utf-8", "replace").rstrip())
        if line[3:4] != b"-":
            break
    if int(lines[-1][:3]) != expected:
        raise SmtpReplyError(f"{command}: {' / '.join(lines)}")


async def blast(
    host: str,
    port: int,
    messages: list[bytes],
    sessions: int,
    sender: str = "cv@sender.example.vn",
    rcpt: str = RCPT,
) -> tuple[float, list[float]]:
    """Send ``messages`` over ``sessions`` concurrent SMTP sessions (EHLO once, then MAIL,
    RCPT, DATA per message; one command at a time, no pipelining); returns the elapsed time
    and each message's latency from MAIL to the 250 after its data. A reply other than the
    expected one raises. The client is a plain stream writer, like Postfix's smtp-source:
    a general-purpose client library re-encodes each message while the load runs, and on a
    2-core machine that CPU is taken from the service being measured."""
    payloads = [data_payload(m) for m in messages]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    latencies: list[float] = []
    mail = f"MAIL FROM:<{sender}>\r\n".encode()
    rcpt_line = f"RCPT TO:<{rcpt}>\r\n".encode()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
        try:
            async with asyncio.timeout(60):
                await _reply(reader, 220, "greeting")
                writer.write(b"EHLO bench.client\r\n")
                await _reply(reader, 250, "EHLO")
            while True:
                try:
                    payload = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                t0 = time.perf_counter()
                async with asyncio.timeout(60):
                    writer.write(mail)
                    await _reply(reader, 250, "MAIL")
                    writer.write(rcpt_line)
                    await _reply(reader, 250, "RCPT")
                    writer.write(b"DATA\r\n")
                    await _reply(reader, 354, "DATA")
                    writer.write(payload)
                    await _reply(reader, 250, "end of data")
                latencies.append(time.perf_counter() - t0)
            writer.write(b"QUIT\r\n")
            await _reply(reader, 221, "QUIT")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return time.perf_counter() - start, latencies


class MaildirHandler:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.bench"
        tmp = self.root / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, envelope.original_content or b"")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.root / "new" / name)
        return "250 OK"


async def run_baseline(
    messages: Sequence[bytes] | Path, sessions: int, workdir: Path
) -> tuple[float, list[float]]:
    handler = MaildirHandler(workdir / "baseline-maildir")
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await asyncio.to_thread(blast_in_process, "127.0.0.1", port, messages, sessions)
    finally:
        server.close()


def prepare_home(home: Path, *agencies: Agency, database_url: str = "") -> Settings:
    """A bench home: loopback listeners, no DNS, no rate limits, our agency (plus
    ``agencies``) and the clerk's mailbox RCPT; the database (``database_url``, else SQLite
    in the home) migrated."""
    from mailsvc.config import load_settings
    from mailsvc.db.models import Agency, Mailbox
    from mailsvc.db.session import make_engine, make_sessionmaker, migrate
    from mailsvc.passwords import hash_password
    from tests.tlsutil import write_self_signed

    home.mkdir()
    write_self_signed(home / "tls/cert.pem", home / "tls/key.pem", "localhost")
    (home / "mailsvc.toml").write_text(
        f'[server]\nhostname = "localhost"\ndomain = "{DOMAIN}"\n'
        '[listen]\nsmtp = "127.0.0.1:0"\nsubmission = "127.0.0.1:0"\nsubmissions = "127.0.0.1:0"\n'
        'imap = "127.0.0.1:0"\nimaps = "127.0.0.1:0"\nhttp = "127.0.0.1:0"\n'
        'metrics = "127.0.0.1:0"\n'
        "[smtp]\nmax_messages_per_ip_per_minute = 1000000\nmax_connections_per_ip = 1000\n"
        '[dns]\nmode = "off"\n'
        f"[pipeline]\nworkers = {WORKERS}\n"
        + (f"[database]\nurl = {json.dumps(database_url)}\n" if database_url else ""),
        encoding="utf-8",
    )
    settings = load_settings(home, environ={})
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        session.add(Agency(code="BENCH", name="Bench", domains=[DOMAIN], local=True))
        session.add_all(agencies)
        session.add(
            Mailbox(
                address=RCPT,
                role="clerk",
                must_change=False,
                password_hash=hash_password("Bench-Password-2026", settings.password),
            )
        )
    engine.dispose()
    return settings


async def run_ours(
    messages: Path, sessions: int, workdir: Path
) -> tuple[float, list[float], ServiceMonitor]:
    from mailsvc.app import App

    os.chmod(workdir, 0o755)
    release_memory()  # the baseline's buffers are not the service's
    app = App(prepare_home(workdir / "home"))
    await app.start()
    try:
        return await blast_monitored(app, messages, sessions)
    finally:
        await app.stop()


async def blast_monitored(
    app: App,
    messages: Path,
    sessions: int,
    sender: str = "cv@sender.example.vn",
    rcpt: str = RCPT,
) -> tuple[float, list[float], ServiceMonitor]:
    """Send ``messages`` to ``app``'s SMTP listener while a ServiceMonitor watches the
    service (CPU by process group, peak RSS; the client process left out)."""
    host, port = app.addresses["smtp"]
    # Start the worker pool's processes first, as the ceiling's pool is (a long-running
    # service pays their start-up once, not in its first seconds of load).
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(app.executor, os.getpid) for _ in range(8)))
    monitor = ServiceMonitor()

    def watching(client: int) -> ServiceMonitor:
        monitor.exclude(client)
        return monitor

    elapsed, latencies = await asyncio.to_thread(
        blast_in_process, host, port, messages, sessions, sender, rcpt, watching
    )
    return elapsed, latencies, monitor


def describe(name: str, count: int, elapsed: float, lat: list[float]) -> float:
    rate = count / elapsed
    lat_sorted = sorted(lat)
    p99 = lat_sorted[int(len(lat_sorted) * 0.99) - 1] * 1000
    print(
        f"{name:<34} {rate:8.1f} msgs/s   p50 {statistics.median(lat) * 1000:6.1f} ms   "
        f"p99 {p99:6.1f} ms"
    )
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        messages = save_messages(Path(tmp) / "messages", make_messages(args.messages, args.size))
        base_elapsed, base_lat = await run_baseline(messages, args.sessions, Path(tmp))
        ours_elapsed, ours_lat, monitor = await run_ours(messages, args.sessions, Path(tmp))
    print(f"{args.messages} messages of {args.size} bytes, {args.sessions} SMTP sessions")
    base = describe("baseline aiosmtpd+Maildir+fsync", args.messages, base_elapsed, base_lat)
    ours = describe("mailsvc full path (LMTP→Dovecot)", args.messages, ours_elapsed, ours_lat)
    print(f"ratio mailsvc/baseline: {ours / base:.2f}")
    monitor.report_processes(args.messages, "message")
    monitor.report(args.messages, "message")
    monitor.report_budget(args.messages, "message", 0.35 * base, "0.35 of the baseline")


if __name__ == "__main__":
    asyncio.run(main())
