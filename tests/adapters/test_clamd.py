"""ClamdClient and ClamdDaemon against a real clamd with the generated test database."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import tests.hostile_mail as hm
from mailsvc.adapters.clamd import (
    FILDES_MAX_BYTES,
    ClamdAddress,
    ClamdClient,
    ClamdError,
    ClamdSizeLimitError,
    parse_scan_reply,
)
from mailsvc.adapters.clamd_daemon import (
    ClamdDaemon,
    ClamdLimits,
    render_config,
    write_test_database,
)
from mailsvc.errors import DependencyError
from mailsvc.runtime import runtime_dir
from tests.clamd_fixture import ClamdService
from tests.ports import unused_port


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="clamd-") as name:
        yield Path(name)


SAMPLES = {
    "clean": (hm.clean(), None),
    "eicar-attachment": (hm.eicar_plain(), "Eicar"),
    "eicar-zipped": (hm.eicar_zipped(), "Eicar"),
    "eicar-in-forwarded-message": (hm.eicar_nested(), "Eicar"),
    "eicar-in-text-body": (hm.eicar_in_body(), "Mailsvc.Test.Eicar-Body"),
    "own-marker-signature": (hm.marker_virus(), "Mailsvc.Test.Marker"),
    "raw-eicar": (hm.EICAR, "Eicar"),
    "empty": (b"", None),
}


@pytest.mark.parametrize("pass_descriptor", [True, False], ids=["fildes", "instream"])
@pytest.mark.parametrize(("data", "expected"), list(SAMPLES.values()), ids=list(SAMPLES))
async def test_scan_samples(
    clamd_service: ClamdService, data: bytes, expected: str | None, pass_descriptor: bool
) -> None:
    client = ClamdClient(
        clamd_service.address,
        max_stream_bytes=clamd_service.stream_max_bytes,
        pass_descriptor=pass_descriptor,
    )
    found = await client.scan(data)
    assert client.pass_descriptor is pass_descriptor  # real clamd took the descriptor
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


async def test_ping_and_version(clamd_service: ClamdService) -> None:
    client = clamd_service.client()
    await client.ping()
    assert await client.is_alive()
    assert (await client.version()).startswith("ClamAV ")


@pytest.mark.parametrize("pass_descriptor", [True, False], ids=["fildes", "instream"])
async def test_multi_chunk_stream_is_scanned_whole(
    clamd_service: ClamdService, pass_descriptor: bool
) -> None:
    """EICAR after 3 MB of padding: found only if every byte reaches clamd (64 KiB chunks
    streamed, or one file passed)."""
    data = hm.with_attachment(bytes(3 * 1024 * 1024) + hm.TEST_MARKER, "big.bin", "octet-stream")
    client = ClamdClient(clamd_service.address, pass_descriptor=pass_descriptor)
    assert await client.scan(data) == "Mailsvc.Test.Marker.UNOFFICIAL"


async def test_over_our_limit_is_refused_before_sending(clamd_service: ClamdService) -> None:
    client = clamd_service.client()
    with pytest.raises(ClamdSizeLimitError, match="exceed the stream limit"):
        await client.scan(bytes(clamd_service.stream_max_bytes + 1))


async def test_over_clamd_stream_max_length_is_a_clear_error(clamd_service: ClamdService) -> None:
    """A client configured above clamd's StreamMaxLength gets clamd's own answer."""
    client = ClamdClient(clamd_service.address, max_stream_bytes=10**9, timeout=10)
    with pytest.raises(ClamdSizeLimitError, match="INSTREAM size limit exceeded"):
        await client.scan(bytes(clamd_service.stream_max_bytes + 1024 * 1024))
    assert await client.scan(b"still fine") is None  # clamd is unharmed


class FakeUnixClamd:
    """A clamd stand-in on a unix socket (a thread): records each command and the bytes
    it was given (streamed, or read from the passed descriptor); answers ``reply_fildes``
    to zFILDES and ``stream: OK`` to zINSTREAM."""

    def __init__(self, path: Path, reply_fildes: bytes = b"fd[9]: OK\0") -> None:
        self.reply_fildes = reply_fildes
        self.seen: list[tuple[str, bytes]] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(8)
        self.address = str(path)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                command = b""
                while not command.endswith(b"\0"):
                    command += conn.recv(1)
                if command == b"zFILDES\0":
                    _, fds, _, _ = socket.recv_fds(conn, 1, 1)
                    with os.fdopen(fds[0], "rb") as passed:
                        self.seen.append(("fildes", passed.read()))
                    conn.sendall(self.reply_fildes)
                else:
                    stream = conn.makefile("rb")
                    data = b""
                    while length := struct.unpack(">I", stream.read(4))[0]:
                        data += stream.read(length)
                    self.seen.append(("instream", data))
                    conn.sendall(b"stream: OK\0")

    def close(self) -> None:
        self.server.close()


async def test_descriptor_passing_sends_the_whole_message_as_one_file(short_dir: Path) -> None:
    fake = FakeUnixClamd(short_dir / "fake.sock")
    try:
        client = ClamdClient(fake.address)
        assert client.pass_descriptor  # the default on a unix socket
        data = hm.eicar_zipped() + bytes(200_000)
        assert await client.scan(data) is None
        assert fake.seen == [("fildes", data)]
        # Above FILDES_MAX_BYTES the data is streamed (clamd keeps it on disk, not memory).
        big = bytes(FILDES_MAX_BYTES + 1)
        assert await client.scan(big) is None
        assert fake.seen[-1] == ("instream", big)
    finally:
        fake.close()


async def test_clamd_that_cannot_scan_a_descriptor_is_streamed_to(short_dir: Path) -> None:
    """A confined clamd answers ERROR to a passed descriptor: the same message is streamed
    (never passed unscanned), and every later one too."""
    fake = FakeUnixClamd(short_dir / "fake.sock", reply_fildes=b"fd[9]: Access denied. ERROR\0")
    try:
        client = ClamdClient(fake.address)
        assert await client.scan(b"first") is None
        assert [how for how, _ in fake.seen] == ["fildes", "instream"]
        assert fake.seen[1] == ("instream", b"first")
        assert not client.pass_descriptor
        assert await client.scan(b"second") is None
        assert fake.seen[2:] == [("instream", b"second")]
    finally:
        fake.close()


def test_descriptor_passing_needs_a_unix_socket() -> None:
    assert not ClamdClient("127.0.0.1:3310").pass_descriptor
    with pytest.raises(ValueError, match="unix socket"):
        ClamdClient("127.0.0.1:3310", pass_descriptor=True)


async def test_unreachable_socket(short_dir: Path) -> None:
    client = ClamdClient(str(short_dir / "nothing.sock"))
    with pytest.raises(ClamdError, match="unreachable") as caught:
        await client.scan(b"x")
    assert isinstance(caught.value, DependencyError)
    assert not await client.is_alive()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _fake_clamd(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}"


async def test_slow_clamd_times_out() -> None:
    """A TCP listener that reads everything and never answers."""
    hold = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        await hold.wait()
        writer.close()

    server, address = await _fake_clamd(silent)
    async with server:
        client = ClamdClient(address, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ClamdError, match="no answer within"):
            await client.scan(hm.clean())
        assert time.monotonic() - started < 2
        hold.set()


async def test_clamd_hanging_up_or_talking_nonsense() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.close()

    async def nonsense(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\0\0\0\0")
        writer.write(b"I am not clamd\0")
        await writer.drain()
        writer.close()

    for handler, message in ((hang_up, "closed the connection|connection lost|reply failed"),
                             (nonsense, "unexpected reply")):  # fmt: skip
        server, address = await _fake_clamd(handler)
        async with server:
            with pytest.raises(ClamdError, match=message):
                await ClamdClient(address, timeout=2).scan(b"abc")


async def test_tcp_and_unix_listeners_of_a_managed_clamd(short_dir: Path) -> None:
    port = unused_port()  # clamd binds it later: not an ephemeral port (tests/ports.py)
    daemon = ClamdDaemon(short_dir, tcp=f"127.0.0.1:{port}", limits=ClamdLimits.for_stream(1 << 20))
    await daemon.start()
    try:
        tcp = ClamdClient(f"127.0.0.1:{port}")
        assert "Eicar" in (await tcp.scan(hm.eicar_zipped()) or "")
        assert await daemon.client().scan(hm.clean()) is None
    finally:
        await daemon.stop()


async def test_stopped_mid_test_then_recovery_with_the_same_client(short_dir: Path) -> None:
    daemon = ClamdDaemon(short_dir, limits=ClamdLimits.for_stream(1 << 20))
    await daemon.start()
    client = daemon.client(timeout=5)
    try:
        assert "Eicar" in (await client.scan(hm.eicar_plain()) or "")
        await daemon.stop()
        with pytest.raises(ClamdError):
            await client.scan(hm.eicar_plain())
        await daemon.start()
        assert "Eicar" in (await client.scan(hm.eicar_plain()) or "")

        # Killed outright: the supervisor restarts it and the same client recovers.
        assert daemon.process is not None
        process = daemon.process
        process.kill_for_test()
        # The signal is delivered while the test goes on: a scan sent at once may still be
        # answered by the dying daemon. Wait for the restart, then for a scan by the new one.
        await wait_for(lambda: _restarted_and_scans(process.restarts, client))
        assert process.restarts == 1
    finally:
        await daemon.stop()


async def _restarted_and_scans(restarts: int, client: ClamdClient) -> bool:
    return restarts >= 1 and await _scans(client)


async def _scans(client: ClamdClient) -> bool:
    try:
        return await client.scan(hm.eicar_plain()) is not None
    except ClamdError:
        return False


def test_generated_config_and_database(short_dir: Path) -> None:
    daemon = ClamdDaemon(short_dir, limits=ClamdLimits.for_stream(25 * 1024 * 1024))
    conf = daemon.prepare().read_text()
    assert f"LocalSocket {short_dir}/clamav/clamd.sock" in conf
    assert "Foreground yes" in conf and "ScanMail yes" in conf
    assert "StreamMaxLength 26214400" in conf
    assert "AlertExceedsMax yes" in conf
    assert "\nUser " not in conf
    db = short_dir / "clamav" / "db"
    assert (db / "mailsvc-test.hdb").read_text().startswith("44d88612fea8a8f36de82e1278abb02f:68:")
    assert "Mailsvc.Test.Marker:0:*:" in (db / "mailsvc-test.ndb").read_text()


def test_existing_signatures_are_left_alone(short_dir: Path) -> None:
    (short_dir / "main.cvd").write_bytes(b"pretend")
    assert write_test_database(short_dir) == []
    assert sorted(p.name for p in short_dir.iterdir()) == ["main.cvd"]


def test_config_with_tcp_listener() -> None:
    text = render_config(
        socket_path=Path("/s"), database_dir=Path("/d"), temp_dir=Path("/t"),
        pid_file=Path("/p"), limits=ClamdLimits(), tcp=ClamdAddress.parse("127.0.0.1:3310"),
    )  # fmt: skip
    assert "TCPSocket 3310\nTCPAddr 127.0.0.1" in text


def test_long_home_puts_the_socket_in_the_short_runtime_directory() -> None:
    home = Path("/tmp/" + "x" * 120)
    daemon = ClamdDaemon(home)
    assert daemon.socket_path == runtime_dir(home) / "clamd.sock"
    assert len(str(daemon.socket_path)) <= 107


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/run/clamav/clamd.ctl", ClamdAddress(path="/run/clamav/clamd.ctl")),
        ("127.0.0.1:3310", ClamdAddress(host="127.0.0.1", port=3310)),
        ("[::1]:3310", ClamdAddress(host="::1", port=3310)),
        ("clamav.internal:3310", ClamdAddress(host="clamav.internal", port=3310)),
        ("clamd.sock", ClamdAddress(path="clamd.sock")),
    ],
)
def test_address_parsing(value: str, expected: ClamdAddress) -> None:
    assert ClamdAddress.parse(value) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("stream: OK", None),
        ("stream: Eicar-Test-Signature FOUND", "Eicar-Test-Signature"),
        (
            "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND",
            "Heuristics.Limits.Exceeded.MaxFileSize",
        ),
    ],
)
def test_reply_parsing(reply: str, expected: str | None) -> None:
    assert parse_scan_reply(reply) == expected


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("INSTREAM size limit exceeded. ERROR", ClamdSizeLimitError),
        ("lstat() failed: No such file or directory. ERROR", ClamdError),
        ("UNKNOWN COMMAND", ClamdError),
        ("stream:  FOUND", ClamdError),
    ],
)
def test_error_replies(reply: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_scan_reply(reply)
