"""The fault matrix, each through a running server with a real SMTP client: the answer a
sender sees, proof that nothing half-written remains, and recovery.

| fault | sender sees | stored mail |
| clamd killed mid-scan | 451 4.7.0, then 250 once clamd is back | nothing written |
| Dovecot killed between commit and LMTP | 451 4.3.0 | row stays `stored`, delivered once when Dovecot is back |
| PostgreSQL stopped | 451 4.3.0 | no row, no blob; 250 when it is back |
| SQLite locked by another process | 451 4.3.0 after busy_timeout | no row, no blob |
| disk full (blobs + Maildirs) | 452 4.3.1 | nothing written |
| DNS timeouts | per authentication.on_error: 451 4.7.0 (tempfail) / 250 (observe) | - |
| slowloris DATA | 421 4.4.2 after data_timeout_seconds; others are served | - |
"""  # noqa: E501

from __future__ import annotations

import asyncio
import contextlib
import os
import select as io_select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailsvc.db.models import MessageRecord
from mailsvc.db.session import migrate
from mailsvc.smtp import replies
from tests.e2e.conftest import (
    DOMAIN,
    PASSWORD,
    RunningServer,
    prepare_home,
    running_server,
    seed,
    wait_for,
)
from tests.faults.conftest import (
    CLERK,
    SENDER,
    PgCluster,
    clerk,
    imap_message_ids,
    message,
    send,
    set_server_keys,
)


def blob_files(server: RunningServer) -> list[Path]:
    root = server.app.blobs.root
    return sorted(p for p in root.rglob("*") if p.is_file())


def rows(server: RunningServer) -> int:
    with server.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(MessageRecord)) or 0)


def states(server: RunningServer) -> list[str]:
    with server.sessions() as session:
        return list(session.scalars(select(MessageRecord.state).order_by(MessageRecord.id)))


async def submit(server: RunningServer, data: bytes) -> str:
    return await asyncio.to_thread(send, server.addr("smtp"), data)


async def inbox(server: RunningServer) -> list[str]:
    return await asyncio.to_thread(imap_message_ids, server.addr("imap"), CLERK, PASSWORD)


async def poll(attempt: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Retry ``attempt`` with growing pauses, as a sending MTA would, until it succeeds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.2
    while not await attempt():
        if loop.time() > deadline:
            raise AssertionError("not accepted in time")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5)


@pytest.fixture
def home(service_home: Path, db_url: str) -> Path:
    prepare_home(service_home, db_url)
    seed(db_url, clerk())
    return service_home


# ------------------------------------------------------------------------------- clamd
async def test_clamd_killed_mid_scan_gives_451_then_recovers_without_restart(home: Path) -> None:
    async with running_server(home) as server:
        clamd = server.app.clamd
        assert clamd is not None and clamd.process is not None
        pid = clamd.process.pid
        assert pid is not None
        blobs_before = blob_files(server)

        os.kill(pid, signal.SIGSTOP)  # clamd accepts the scan but never answers...
        reply = asyncio.ensure_future(submit(server, message(subject="Quét dở")))
        await wait_for(lambda: server.app.inflight.count == 1, timeout=30)
        os.kill(pid, signal.SIGKILL)  # ...and dies in the middle of it
        assert (await reply).startswith("451 4.7.0")
        assert rows(server) == 0 and blob_files(server) == blobs_before

        # The supervisor restarts clamd; the same server accepts mail again.
        await wait_for(lambda: clamd.state == "up" and clamd.process is not None
                       and clamd.process.pid not in (None, pid), timeout=30)  # fmt: skip
        assert (await submit(server, message(subject="Quét lại"))).startswith("250")
        await wait_for(lambda: states(server) == ["delivered"])  # the mark follows the 250


# ----------------------------------------------------------------------------- Dovecot
async def test_dovecot_killed_between_commit_and_lmtp_delivers_the_stored_row_once(
    home: Path,
) -> None:
    async with running_server(home) as server:
        supervisor = server.app.dovecot.supervisor
        assert supervisor is not None and supervisor.pid is not None
        pgid = supervisor.pid
        data = message(subject="Giữa commit và LMTP")

        os.killpg(pgid, signal.SIGSTOP)  # LMTP connects but gets no answer
        reply = asyncio.ensure_future(submit(server, data))
        await wait_for(lambda: states(server) == ["stored"], timeout=30)  # committed
        os.killpg(pgid, signal.SIGKILL)
        # README: a delivery failure after the commit answers 451; the row stays stored.
        assert (await reply).startswith("451 4.3.0")

        # Dovecot is restarted by the supervisor, and the stored row goes out: once.
        await wait_for(lambda: states(server) == ["delivered"], timeout=30)
        assert len(await inbox(server)) == 1
        # The sender's retry is recognised as the same message: still one copy.
        assert (await submit(server, data)).startswith("250 2.0.0 OK already received")
        assert len(await inbox(server)) == 1
        assert rows(server) == 1


# ---------------------------------------------------------------------------- database
@pytest.fixture
def pg_home(service_home: Path, pg_cluster: PgCluster) -> Iterator[tuple[Path, PgCluster]]:
    url = pg_cluster.create_database()
    migrate(url)
    prepare_home(service_home, url)
    seed(url, clerk())
    try:
        yield service_home, pg_cluster
    finally:
        with contextlib.suppress(AssertionError):
            pg_cluster.start()  # the test may have failed while it was stopped


async def test_postgresql_stopped_gives_451_leaves_nothing_and_recovers(
    pg_home: tuple[Path, PgCluster],
) -> None:
    home, cluster = pg_home
    async with running_server(home) as server:
        assert (await submit(server, message(subject="Trước sự cố"))).startswith("250")
        blobs_before = blob_files(server)

        await asyncio.to_thread(cluster.stop)
        try:
            # The recipient is known from the cache, the checks pass, the commit fails.
            reply = await submit(server, message(subject="Khi CSDL dừng", body="Nội dung mới."))
            assert reply.startswith("451 4.3.0"), reply
            assert blob_files(server) == blobs_before  # the new blob was removed again
            unknown = await asyncio.to_thread(send, server.addr("smtp"), message(), f"moi@{DOMAIN}")
            assert unknown.startswith("4"), unknown  # never a 5xx for a database outage
        finally:
            await asyncio.to_thread(cluster.start)

        assert rows(server) == 1  # nothing half-written
        # Back: a sender retrying gets its 250 (Dovecot's own SQL connection may need a
        # moment to come back; until then the answer is 451 and the row waits, stored).
        after = message(subject="Sau sự cố")
        replies_seen: list[str] = []

        async def accepted() -> bool:
            replies_seen.append(await submit(server, after))
            return replies_seen[-1].startswith("250")

        await poll(accepted, timeout=60)
        assert all(r.startswith(("250", "451")) for r in replies_seen), replies_seen
        await wait_for(lambda: states(server) == ["delivered", "delivered"], timeout=30)
        assert len(await inbox(server)) == 2  # exactly once


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


async def test_sqlite_locked_by_another_process_gives_451_and_recovers(
    service_home: Path,
) -> None:
    db = service_home / "mailsvc.sqlite3"
    url = f"sqlite:///{db}"
    prepare_home(service_home, url)
    migrate(url)
    seed(url, clerk())
    config = service_home / "mailsvc.toml"
    config.write_text(
        config.read_text().replace("[database]\n", "[database]\nbusy_timeout_seconds = 2\n", 1)
    )
    async with running_server(service_home) as server:
        assert (await submit(server, message(subject="Trước khi khoá"))).startswith("250")
        blobs_before = blob_files(server)

        locker = subprocess.Popen(  # noqa: ASYNC220 - a helper process, no output awaited
            [sys.executable, "-c", LOCKER, str(db)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert locker.stdout is not None
            assert (await asyncio.to_thread(locker.stdout.readline)).strip() == "locked"
            reply = await submit(server, message(subject="Khi bị khoá", body="Khác."))
            assert reply.startswith("451 4.3.0"), reply
        finally:
            assert locker.stdin is not None
            locker.stdin.write("\n")
            locker.stdin.flush()
            await asyncio.to_thread(locker.wait, 30)
        assert blob_files(server) == blobs_before and rows(server) == 1
        assert (await submit(server, message(subject="Sau khi mở khoá"))).startswith("250")
        await wait_for(lambda: states(server) == ["delivered", "delivered"])


# ---------------------------------------------------------------------------- disk full
@pytest.fixture
def small_disk(service_home: Path, db_url: str) -> Iterator[Path]:
    """The blob store and the Maildirs on a 4 MiB tmpfs (root only: mount)."""
    prepare_home(service_home, db_url, extra='\n[paths]\nblob_root = "store/blobs"\n'
                 'maildir_root = "store/mail"\n')  # fmt: skip
    set_server_keys(service_home, min_free_megabytes=1)
    seed(db_url, clerk())
    store = service_home / "store"
    store.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "mailsvc-test", str(store)],
        check=True,
    )
    try:
        yield store
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


async def test_full_disk_gives_452_writes_nothing_and_recovers(small_disk: Path) -> None:
    home = small_disk.parent
    async with running_server(home) as server:
        assert (await submit(server, message(subject="Còn chỗ"))).startswith("250")
        blobs_before = blob_files(server)
        st = os.statvfs(small_disk)
        filler = small_disk / "filler"
        # Leave 1.2 MiB: less than the 1 MiB reserve plus twice a 200 KB message.
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 1_200_000))
        big = message(subject="Đầy đĩa", body="Nội dung dài. " * 15_000)

        reply = await submit(server, big)
        assert reply.startswith(replies.STORAGE_FULL[:9]), reply  # 452 4.3.1
        assert blob_files(server) == blobs_before and rows(server) == 1
        assert not list((server.app.blobs.root).rglob(".tmp-*"))

        filler.unlink()  # space is back
        assert (await submit(server, big)).startswith("250")
        await wait_for(lambda: states(server) == ["delivered", "delivered"])
        assert len(await inbox(server)) == 2


# ---------------------------------------------------------------------------------- DNS
@pytest.fixture
def silent_dns() -> Iterator[int]:
    """A UDP and TCP port on loopback where nobody ever answers."""
    for _ in range(50):  # the UDP port's number may be taken for TCP: take another pair
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket()
        try:
            tcp.bind(("127.0.0.1", port))
            break
        except OSError:
            udp.close()
            tcp.close()
    else:
        raise RuntimeError("no loopback port free for both UDP and TCP")
    tcp.listen(16)
    try:
        yield port
    finally:
        udp.close()
        tcp.close()


PACKAGED_POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.parametrize(("on_error", "answer"), [("tempfail", "451 4.7.0"), ("observe", "250")])
async def test_dns_timeouts_follow_authentication_on_error(
    service_home: Path, db_url: str, silent_dns: int, on_error: str, answer: str
) -> None:
    prepare_home(service_home, db_url)
    seed(db_url, clerk())
    config = service_home / "mailsvc.toml"
    config.write_text(
        config.read_text().replace(
            '[dns]\nmode = "off"',
            f'[dns]\nmode = "servers"\nservers = ["127.0.0.1:{silent_dns}"]\ntimeout_seconds = 1',
        )
    )
    policies = service_home / "policies"
    shutil.copytree(PACKAGED_POLICIES, policies)
    pipeline = policies / "pipeline.yaml"
    text = pipeline.read_text()
    marker = "  authentication:\n"
    head, tail = text.split(marker, 1)
    tail = tail.replace("on_error: tempfail", f"on_error: {on_error}", 1)
    pipeline.write_text(head + marker + tail)
    async with running_server(service_home) as server:
        started = time.monotonic()
        reply = await submit(server, message(subject="DNS im lặng"))
        assert reply.startswith(answer), reply
        assert time.monotonic() - started < 30  # bounded by dns.timeout_seconds per lookup
        if on_error == "tempfail":
            assert rows(server) == 0
        else:
            await wait_for(lambda: states(server) == ["delivered"])


# ---------------------------------------------------------------------------- slowloris
def _dribble(addr: tuple[str, int], stop: threading.Event, result: list[str]) -> None:
    """DATA, then one short line every 0.2 s until the server gives up on us."""
    sock = socket.create_connection(addr, timeout=30)
    reader = sock.makefile("rb")
    try:
        for command in (None, b"EHLO slow.example.vn", f"MAIL FROM:<{SENDER}>".encode(),
                        f"RCPT TO:<{CLERK}>".encode(), b"DATA"):  # fmt: skip
            if command is not None:
                sock.sendall(command + b"\r\n")
            while True:
                line = reader.readline()
                if line[3:4] != b"-":
                    break
        result.append("in DATA")
        sock.sendall(b"Subject: slow\r\n\r\n")
        while not stop.is_set():
            try:
                sock.sendall(b"x\r\n")
            except OSError:
                result.append("closed")
                return
            readable, _, _ = io_select.select([sock], [], [], 0.2)
            if readable:  # the server spoke (or closed): that ends the dribble
                line = reader.readline()
                result.append(line.decode().strip() if line else "closed")
                return
    finally:
        sock.close()


async def test_slowloris_data_times_out_and_frees_its_slot(service_home: Path, db_url: str) -> None:
    prepare_home(service_home, db_url, extra="\n[smtp]\ndata_timeout_seconds = 8\n"
                 "max_connections_per_ip = 2\n")  # fmt: skip
    seed(db_url, clerk())
    async with running_server(service_home) as server:
        addr = server.addr("smtp")
        stop = threading.Event()
        result: list[str] = []
        slow = threading.Thread(target=_dribble, args=(addr, stop, result), daemon=True)
        slow.start()
        try:
            await wait_for(lambda: result == ["in DATA"], timeout=10)
            # Others are served while the slow client dribbles.
            assert (await submit(server, message(subject="Bình thường"))).startswith("250")

            def second_slot_then_full() -> tuple[int, int]:
                with smtplib.SMTP(*addr, timeout=10) as other:
                    code = other.noop()[0]
                    try:
                        with smtplib.SMTP(*addr, timeout=10) as third:
                            return code, third.noop()[0]
                    except smtplib.SMTPConnectError as exc:
                        return code, exc.smtp_code

            assert await asyncio.to_thread(second_slot_then_full) == (250, 421)
            assert result == ["in DATA"]  # the slow client was still holding its slot
            # The slow client is cut off by its DATA timeout, with a 421 ...
            await wait_for(lambda: len(result) == 2, timeout=20)
            assert result[1].startswith("421 4.4.2"), result
            # nothing of the slow message stored (the first one's mark follows its 250)
            await wait_for(lambda: states(server) == ["delivered"])
            # ... and its slot is free again.
            await wait_for(lambda: server.app.rate._connections.get("127.0.0.1", 0) == 0)
            assert (await submit(server, message(subject="Sau"))).startswith("250")
        finally:
            stop.set()
            slow.join(timeout=10)
