"""Async LMTP client for delivery into Dovecot: a small pool of persistent, pipelined connections.

Only the final 250 for a recipient (after the message data) means "delivered".
Any other outcome raises :class:`LmtpError` carrying Dovecot's reply; its
``temporary`` flag tells a 4xx (try again later) from a 5xx (refused for good).
A lost connection counts as temporary.

Folders other than INBOX are reached with Dovecot's ``lmtp_save_to_detail_mailbox``:
the recipient ``user@dom`` with folder ``Junk`` becomes ``user+Junk@dom``.

Line endings: the message should use CRLF (as received over SMTP); it then
arrives byte for byte (Dovecot prepends one ``Return-Path:`` line). A bare LF
is sent as CRLF, since SMTP/LMTP data cannot carry bare LFs.

The message goes as one ``BDAT <size> LAST`` chunk (RFC 3030 CHUNKING, which Dovecot's
LMTP offers) when the server offers it, else as DATA: with BDAT neither side scans
the message for lines starting with a dot (for a 300 KB document, Dovecot's CPU per
delivery fell by a quarter and ours by half).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailsvc.errors import MailsvcError

log = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s")
_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,63}$")
DETAIL_DELIMITER = "+"


@dataclass(frozen=True)
class LmtpReply:
    code: int
    text: str

    @property
    def enhanced(self) -> str:
        m = _ENHANCED.match(self.text)
        return m.group(1) if m else ""

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class LmtpError(MailsvcError):
    """Delivery failed; ``reply`` is Dovecot's answer (code 421 for a lost connection)."""

    def __init__(self, recipient: str, stage: str, reply: LmtpReply) -> None:
        super().__init__(f"LMTP delivery to {recipient} failed at {stage}: {reply}")
        self.recipient = recipient
        self.stage = stage
        self.reply = reply

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def temporary(self) -> bool:
        return self.reply.code < 500

    @property
    def permanent(self) -> bool:
        return self.reply.code >= 500


def crlf(data: bytes) -> bytes:
    """``data`` with CRLF line ends, ending with CRLF unless empty (what BDAT sends)."""
    # Every LF is part of a CRLF unless there are more LFs than CRLFs. The LFs are
    # counted as the bytes a replace takes out: CPython counts a single byte one byte at a
    # time and replaces it with memchr (0.23 against 0.05 ms for 300 KB).
    if len(data) - len(data.replace(b"\n", b"")) != data.count(b"\r\n"):
        data = _BARE_LF.sub(b"\r\n", data)  # bare LFs: rare, the regex pays
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed, terminated by ``.\\r\\n``."""
    return _dot_stuff(crlf(data))


def _dot_stuff(data: bytes) -> bytes:
    data = data.replace(b"\n.", b"\n..")  # bytes.replace: ~20x a MULTILINE regex
    if data.startswith(b"."):
        data = b"." + data
    return data + b".\r\n"


def folder_address(recipient: str, folder: str) -> str:
    """``user@dom`` for INBOX, ``user+Folder@dom`` for another folder."""
    if folder == "INBOX":
        return recipient
    if not _FOLDER.match(folder) or ".." in folder:
        raise ValueError(f"invalid folder name {folder!r}")
    local, at, domain = recipient.rpartition("@")
    if not at or DETAIL_DELIMITER in local:
        raise ValueError(f"cannot deliver {recipient!r} to a folder: needs user@domain without '+'")
    return f"{local}{DETAIL_DELIMITER}{folder}@{domain}"


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.capabilities: set[str] = set()
        self.used = False

    async def read_reply(self) -> LmtpReply:
        lines: list[str] = []
        while True:
            raw = await self.reader.readline()
            if not raw:
                raise ConnectionResetError("LMTP server closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionResetError(f"malformed LMTP reply: {line!r}")
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return LmtpReply(int(line[:3]), "\n".join(lines))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class LmtpClient:
    """Deliver over LMTP (unix socket) with up to ``pool_size`` concurrent, reused connections."""

    def __init__(
        self,
        path: str | Path,
        *,
        pool_size: int = 4,
        timeout: float = 60.0,
        lhlo_name: str = "mailsvc",
    ) -> None:
        self.path = str(path)
        self.timeout = timeout
        self.lhlo_name = lhlo_name
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(pool_size)
        self._closed = False

    async def deliver(
        self, recipient: str, data: bytes, folder: str = "INBOX", *, sender: str = ""
    ) -> None:
        """Deliver one message to one mailbox folder; raise LmtpError unless Dovecot says 250."""
        results = await self.deliver_many([recipient], data, folder, sender=sender)
        error = results[recipient]
        if error is not None:
            raise error

    async def deliver_many(
        self,
        recipients: Sequence[str],
        data: bytes,
        folder: str = "INBOX",
        *,
        sender: str = "",
    ) -> dict[str, LmtpError | None]:
        """One transaction for several recipients; maps each recipient to None (delivered)
        or its LmtpError. Raises LmtpError (421) only for a connection failure."""
        if not recipients:
            return {}
        rcpts = [folder_address(r, folder) for r in recipients]
        payload = crlf(data)
        async with self._slots:
            for attempt in range(2):
                conn = await self._acquire(recipients[0])
                fresh = not conn.used
                try:
                    result = await asyncio.wait_for(
                        self._transaction(conn, list(recipients), rcpts, payload, sender),
                        self.timeout,
                    )
                except _StaleConnection:
                    conn.close()
                    if attempt == 0 and not fresh:
                        continue  # idle connection closed by Dovecot: retry once on a new one
                    raise LmtpError(
                        recipients[0], "MAIL", LmtpReply(421, "4.4.2 connection lost")
                    ) from None
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    conn.close()
                    raise LmtpError(
                        recipients[0], "DATA", LmtpReply(421, f"4.4.2 connection lost: {exc}")
                    ) from exc
                except BaseException:
                    conn.close()
                    raise
                conn.used = True
                self._idle.append(conn)
                return result
        raise AssertionError("unreachable")

    async def _acquire(self, recipient: str) -> _Connection:
        if self._closed:
            raise LmtpError(recipient, "connect", LmtpReply(421, "4.3.2 LMTP client closed"))
        if self._idle:
            return self._idle.pop()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path, limit=1 << 20), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise LmtpError(
                recipient, "connect", LmtpReply(421, f"4.4.1 cannot connect to {self.path}: {exc}")
            ) from exc
        conn = _Connection(reader, writer)
        try:
            greeting = await asyncio.wait_for(conn.read_reply(), self.timeout)
            if greeting.code != 220:
                raise LmtpError(recipient, "greeting", greeting)
            writer.write(f"LHLO {self.lhlo_name}\r\n".encode())
            reply = await asyncio.wait_for(conn.read_reply(), self.timeout)
            if reply.code != 250:
                raise LmtpError(recipient, "LHLO", reply)
        except (OSError, TimeoutError) as exc:
            conn.close()
            raise LmtpError(
                recipient, "LHLO", LmtpReply(421, f"4.4.2 connection lost: {exc}")
            ) from exc
        except LmtpError:
            conn.close()
            raise
        conn.capabilities = {line.split(" ")[0].upper() for line in reply.text.split("\n")[1:]}
        return conn

    async def _transaction(
        self,
        conn: _Connection,
        recipients: list[str],
        rcpts: list[str],
        payload: bytes,
        sender: str,
    ) -> dict[str, LmtpError | None]:
        """One transaction; ``payload`` has CRLF line ends (:func:`crlf`)."""
        params = ""
        if "SMTPUTF8" in conn.capabilities and not all(s.isascii() for s in [sender, *rcpts]):
            params = " SMTPUTF8"
        chunking = "CHUNKING" in conn.capabilities
        commands = [f"MAIL FROM:<{sender}>{params}\r\n"]
        commands += [f"RCPT TO:<{r}>\r\n" for r in rcpts]
        if not chunking:
            commands.append("DATA\r\n")
        conn.writer.write("".join(commands).encode("utf-8"))
        try:
            await conn.writer.drain()
            mail = await conn.read_reply()
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _StaleConnection from exc
        results: dict[str, LmtpError | None] = {}
        accepted: list[str] = []
        for recipient in recipients:
            reply = await conn.read_reply()
            if mail.code != 250:
                results[recipient] = LmtpError(recipient, "MAIL", mail)
            elif reply.code not in (250, 251):
                results[recipient] = LmtpError(recipient, "RCPT", reply)
            else:
                accepted.append(recipient)
        if chunking:
            if not accepted:  # nothing to send: end the transaction
                conn.writer.write(b"RSET\r\n")
                await conn.read_reply()
                return results
            conn.writer.write(f"BDAT {len(payload)} LAST\r\n".encode())
            conn.writer.write(payload)
            await conn.writer.drain()
            return await self._final_replies(conn, recipients, accepted, results)
        data_reply = await conn.read_reply()
        if data_reply.code != 354:
            for recipient in accepted:
                results[recipient] = LmtpError(recipient, "DATA", data_reply)
            if mail.code == 250 and accepted:
                log.warning("LMTP DATA refused: %s", data_reply)
            conn.writer.write(b"RSET\r\n")
            await conn.read_reply()
            return results
        conn.writer.write(_dot_stuff(payload))
        await conn.writer.drain()
        return await self._final_replies(conn, recipients, accepted, results)

    @staticmethod
    async def _final_replies(
        conn: _Connection,
        recipients: list[str],
        accepted: list[str],
        results: dict[str, LmtpError | None],
    ) -> dict[str, LmtpError | None]:
        for recipient in accepted:  # LMTP: one reply per accepted recipient
            reply = await conn.read_reply()
            results[recipient] = (
                None if reply.code == 250 else LmtpError(recipient, "end of data", reply)
            )
        return {r: results[r] for r in recipients}

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            with contextlib.suppress(Exception):
                conn.writer.write(b"QUIT\r\n")
            conn.close()


class _StaleConnection(Exception):
    """A reused connection failed before the server answered MAIL FROM."""
