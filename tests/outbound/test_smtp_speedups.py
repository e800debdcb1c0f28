"""aiosmtplib's line-ending and dot-stuffing passes against their fast paths: the same
bytes for every mix of CR, LF, CRLF and leading dots, and the same message received by a
real aiosmtpd server when aiosmtplib sends it either way."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import aiosmtplib
import aiosmtplib.protocol as protocol
import pytest
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsvc.outbound import smtp_speedups

TEXT = st.lists(
    st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b"\n.", b" "]),
    max_size=40,
).map(b"".join)


def test_installed_for_the_checked_release() -> None:
    assert version("aiosmtplib") in smtp_speedups.CHECKED_RELEASES["aiosmtplib"]
    assert smtp_speedups.install()
    assert protocol.normalize_message_line_endings is smtp_speedups.normalize_message_line_endings
    assert isinstance(protocol.PERIOD_REGEX, smtp_speedups.PeriodStuffing)


@settings(max_examples=800, deadline=None)
@given(TEXT)
def test_same_bytes_as_aiosmtplibs(message: bytes) -> None:
    ours = smtp_speedups.normalize_message_line_endings(message)
    assert ours == smtp_speedups._OWN_NORMALIZE(message)
    stuffing = smtp_speedups.PeriodStuffing(smtp_speedups._OWN_PERIOD)
    assert stuffing.sub(b"..", ours) == smtp_speedups._OWN_PERIOD.sub(b"..", ours)
    assert stuffing.sub(b"..", message) == smtp_speedups._OWN_PERIOD.sub(b"..", message)


@pytest.mark.parametrize(
    "message",
    [b"", b".", b"\r\n", b"a\r\n", b"a", b"\r\r\n", b"a\n\r", b".\r\n.\r\n", b"x\r\n..y"],
)
def test_edge_cases(message: bytes) -> None:
    assert smtp_speedups.normalize_message_line_endings(message) == smtp_speedups._OWN_NORMALIZE(
        message
    )
    stuffing = smtp_speedups.PeriodStuffing(smtp_speedups._OWN_PERIOD)
    assert stuffing.sub(b"..", message) == smtp_speedups._OWN_PERIOD.sub(b"..", message)


class Keep:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        self.received.append(bytes(envelope.original_content or b""))
        return "250 OK"


MESSAGES = [
    b"From: a@b.vn\r\nTo: c@d.vn\r\nSubject: x\r\n\r\nbody\r\n.leading dot\r\n..two\r\n",
    b"From: a@b.vn\r\nTo: c@d.vn\r\n\r\nLF only\nlines\n.dot\n",
    b"From: a@b.vn\r\nTo: c@d.vn\r\n\r\nno final line end",
    b"From: a@b.vn\r\nTo: c@d.vn\r\n\r\n"
    + b"Kh\xc3\xb4ng c\xc3\xb3 d\xe1\xba\xa5u ch\xe1\xba\xa5m\r\n" * 500,
    b".From: first line a dot\r\n\r\nx\r\n",
]


def test_a_server_receives_the_same_message_either_way() -> None:
    keep = Keep()

    async def send_all(port: int) -> None:
        for message in MESSAGES:
            await aiosmtplib.send(
                message, sender="a@b.vn", recipients=["c@d.vn"], hostname="127.0.0.1", port=port
            )

    async def both() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: SmtpServer(keep), "127.0.0.1", 0
        )
        port = int(server.sockets[0].getsockname()[1])
        try:
            assert smtp_speedups.install()
            await send_all(port)
            smtp_speedups.uninstall()
            try:
                await send_all(port)
            finally:
                assert smtp_speedups.install()
        finally:
            server.close()

    asyncio.run(both())
    ours, theirs = keep.received[: len(MESSAGES)], keep.received[len(MESSAGES) :]
    assert len(theirs) == len(MESSAGES)
    assert ours == theirs
    assert ours[0].endswith(b".leading dot\r\n..two\r\n")  # the server undid the stuffing
