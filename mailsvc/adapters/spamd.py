"""A small asyncio client for SpamAssassin's spamd (the SPAMC protocol, SYMBOLS command).

No maintained asyncio SPAMC client exists; the protocol is one request and one reply.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from mailsvc.errors import DependencyError

_SPAM_LINE = re.compile(rb"^Spam:\s*(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)", re.I)
_STATUS = re.compile(rb"^SPAMD/[\d.]+\s+(\d+)\s+(.*)$")


class SpamdError(DependencyError):
    """spamd unreachable, slow or answering an error."""


@dataclass(frozen=True)
class SpamdResult:
    is_spam: bool
    score: float
    threshold: float
    rules: tuple[str, ...]


class SpamdClient:
    """``address`` is ``HOST:PORT`` or a unix socket path."""

    def __init__(self, address: str, *, timeout: float = 30.0, user: str = "mailsvc") -> None:
        self.address = address
        self.timeout = timeout
        self.user = user

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.startswith("/"):
            return await asyncio.open_unix_connection(self.address)
        host, _, port = self.address.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))

    async def check(self, message: bytes) -> SpamdResult:
        try:
            return await asyncio.wait_for(self._check(message), self.timeout)
        except TimeoutError as exc:
            raise SpamdError(f"spamd at {self.address}: no answer in {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise SpamdError(f"spamd at {self.address}: {exc}") from exc

    async def _check(self, message: bytes) -> SpamdResult:
        reader, writer = await self._open()
        try:
            head = (
                f"SYMBOLS SPAMC/1.5\r\nContent-length: {len(message)}\r\nUser: {self.user}\r\n\r\n"
            ).encode()
            writer.write(head + message)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            reply = await reader.read()
        finally:
            writer.close()
        return parse_reply(reply, self.address)


def parse_reply(reply: bytes, address: str = "spamd") -> SpamdResult:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = _STATUS.match(lines[0]) if lines else None
    if status is None:
        raise SpamdError(f"{address}: not a SPAMD reply: {lines[0][:80]!r}")
    if status.group(1) != b"0":
        raise SpamdError(f"{address}: error {status.group(1).decode()} {status.group(2).decode()}")
    for line in lines[1:]:
        match = _SPAM_LINE.match(line)
        if match:
            rules = tuple(r for r in body.decode("ascii", "replace").strip().split(",") if r)
            return SpamdResult(
                is_spam=match.group(1).lower() in (b"true", b"yes"),
                score=float(match.group(2)),
                threshold=float(match.group(3)),
                rules=rules,
            )
    raise SpamdError(f"{address}: SPAMD reply without a Spam: line")
