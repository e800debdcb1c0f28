"""The small pieces of the external-mailbox client: password files, folder names, senders."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mailsvc.config import ExternalMailbox
from mailsvc.errors import ConfigError
from mailsvc.external.imap import RemoteError, RemoteSession, encode_folder, read_password
from mailsvc.external.poller import return_path
from tests.external.conftest import HostileImap


def test_password_file_must_not_be_readable_by_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "so-khac.password"
    path.write_text("Mat-khau-2026\n", encoding="utf-8")
    path.chmod(0o600)
    assert read_password(path, "external[0].password_file") == "Mat-khau-2026"

    path.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        assert read_password(path, "external[0].password_file") == "Mat-khau-2026"
    assert "readable by its group" in caplog.text

    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"external\[0\].password_file.*chmod 600"):
        read_password(path, "external[0].password_file")

    path.write_text("\n", encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        read_password(path, "external[0].password_file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(tmp_path / "missing", "external[0].password_file")


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Văn bản đến", "V&AQM-n b&HqM-n &AREevw-n"),
        ("Thư đã gửi & lưu", "Th&AbA- &AREA4w- g&Hu0-i &- l&AbA-u"),  # "-" even before a space
        ("R&D", "R&-D"),
        ("\u03ff", "&A,8-"),  # base64 "/" becomes ","
        ('Sổ "đến"', 'S&HtU- \\"&AREevw-n\\"'),  # quotes escaped in the quoted string
    ],
)
def test_folder_names_use_modified_utf7(name: str, wire: str) -> None:
    # RFC 3501 5.1.3, as a quoted string
    assert encode_folder(name) == f'"{wire}"'


def test_return_path_is_the_envelope_sender() -> None:
    raw = b"Return-Path: <VanThu@UBND.example.vn>\r\nFrom: a@b.vn\r\n\r\nbody\r\n"
    assert return_path(raw) == "vanthu@ubnd.example.vn"
    assert return_path(b"Return-Path: <>\r\nFrom: a@b.vn\r\n\r\nx\r\n") == ""
    assert return_path(b"From: a@b.vn\r\n\r\nReturn-Path: <x@y.vn>\r\n") == ""


LIMIT = 100_000


class ScriptedImap:
    """A loopback IMAP server that answers the session's commands (greeting, CAPABILITY,
    LOGIN, SELECT) and, when IDLE arrives, does what ``on_idle`` says: ``close`` the
    connection without an answer (a server going away just then) or stay ``silent``."""

    def __init__(self, on_idle: str) -> None:
        self.on_idle = on_idle
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK IMAP4rev1 scripted\r\n")
        while line := await reader.readline():
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n" + f"{tag} OK done\r\n".encode())
            elif command == "SELECT":
                writer.write(
                    b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 1] n\r\n"
                    + f"{tag} OK [READ-WRITE] selected\r\n".encode()
                )
            elif command == "IDLE" and self.on_idle == "close":
                writer.close()
                return
            elif command == "IDLE":
                continue  # never acknowledged
            else:
                writer.write(f"{tag} OK done\r\n".encode())
            await writer.drain()


def scripted_mailbox(port: int) -> ExternalMailbox:
    return ExternalMailbox(
        name="khac",
        host="127.0.0.1",
        port=port,
        tls="none",
        username="vanthu",
        password_file="unused",
        deliver_to="vanthu@stttt.example.vn",
    )


async def test_idle_sent_as_the_server_goes_away_ends_instead_of_waiting_for_ever() -> None:
    """aioimaplib fails no pending command when the connection drops: an IDLE sent just
    as the server closed waited for its acknowledgement for ever, and the poller with it
    (no error recorded, no reconnection). It now returns with the session marked lost."""
    async with ScriptedImap(on_idle="close") as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 5.0, max_size=LIMIT
        ) as remote:
            assert remote.offers_idle and remote.selected is not None
            news = await asyncio.wait_for(remote.wait_for_news(300, asyncio.Event()), 10)
            assert news is False and remote.lost.is_set()


async def test_an_idle_the_server_never_acknowledges_is_an_error_after_the_timeout() -> None:
    async with ScriptedImap(on_idle="silent") as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 1.0, max_size=LIMIT
        ) as remote:
            with pytest.raises(RemoteError, match="IDLE not acknowledged in 1 s"):
                await asyncio.wait_for(remote.wait_for_news(300, asyncio.Event()), 10)


@pytest.mark.parametrize("mode", ["big-literal", "endless-line"])
async def test_a_response_larger_than_the_limit_is_never_held_in_memory(mode: str) -> None:
    """The server listed the message as small and answered with a 64 MiB literal (or a
    line that never ends): it was all read into memory before anything looked at its
    size. The announced literal (or the bytes received) beyond the limit now drop the
    connection at once, and the body is asked for with a partial range."""
    hostile = HostileImap(mode)
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 10.0, max_size=LIMIT
        ) as remote:
            with pytest.raises(RemoteError, match="larger than"):
                await asyncio.wait_for(remote.fetch(1), 15)
            assert remote.lost.is_set()
        await asyncio.wait_for(hostile.closed.wait(), 10)
    assert hostile.streamed < 16 * 1024 * 1024, "the client kept reading"
    [fetch] = [c for c in hostile.commands if "BODY.PEEK" in c]
    assert f"BODY.PEEK[]<0.{LIMIT + 1}>" in fetch


async def test_an_honest_server_sends_at_most_the_limit_plus_one() -> None:
    hostile = HostileImap("honest")
    hostile.body = b"Subject: lon\r\n\r\n" + b"x" * (3 * LIMIT)
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 10.0, max_size=LIMIT
        ) as remote:
            raw = await asyncio.wait_for(remote.fetch(1), 15)
    assert raw is not None and len(raw) == LIMIT + 1  # the caller refuses it as too large


async def test_a_folder_of_thousands_of_new_messages_is_listed_in_batches() -> None:
    """A listing of 3,000 messages arriving in one read made aioimaplib's recursive
    parser raise RecursionError: the connection dropped and UID FETCH never returned."""
    hostile = HostileImap("honest")
    hostile.uids = list(range(1, 3001))
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 5.0, max_size=LIMIT
        ) as remote:
            listed = await asyncio.wait_for(remote.new_messages(0), 20)
            assert listed == [(uid, 1000) for uid in range(1, 3001)]
            assert await asyncio.wait_for(remote.new_messages(2990), 10) == [
                (uid, 1000) for uid in range(2991, 3001)
            ]


async def test_a_listing_flood_is_a_protocol_error_not_a_hang() -> None:
    hostile = HostileImap("listing-flood")
    hostile.uids = list(range(1, 5001))
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 5.0, max_size=LIMIT
        ) as remote:
            with pytest.raises(RemoteError, match="protocol error"):
                await asyncio.wait_for(remote.new_messages(0), 10)
            assert remote.lost.is_set()


async def test_a_connection_lost_mid_command_fails_it_at_once() -> None:
    hostile = HostileImap("hangup")
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 60.0, max_size=LIMIT
        ) as remote:
            with pytest.raises(RemoteError, match="connection lost"):
                await asyncio.wait_for(remote.fetch(1), 10)
            assert remote.lost.is_set()


async def test_a_drip_fed_answer_ends_at_the_command_deadline() -> None:
    """One byte every half second re-armed aioimaplib's command timer: the fetch never
    ended. Every command now has an overall deadline, after which the connection drops."""
    hostile = HostileImap("drip")
    async with hostile as port:
        async with RemoteSession(
            scripted_mailbox(port), "mat-khau", None, 2.0, max_size=LIMIT
        ) as remote:
            with pytest.raises(RemoteError, match="no complete answer in 2 s"):
                await asyncio.wait_for(remote.fetch(1), 15)
            assert remote.lost.is_set()
        await asyncio.wait_for(hostile.closed.wait(), 10)
