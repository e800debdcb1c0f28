"""One IMAP session on another agency's server, with aioimaplib: connect (implicit TLS,
STARTTLS or plain), log in, select the folder, list new UIDs, fetch a message, IDLE.

Nothing on the remote server is changed: bodies are read with ``BODY.PEEK[]`` (no
``\\Seen``), and no STORE, COPY, MOVE or EXPUNGE is ever sent.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aioimaplib

from mailsvc.config import ExternalMailbox
from mailsvc.errors import ConfigError, DependencyError

log = logging.getLogger(__name__)

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_NEWS = re.compile(rb"^\d+ (EXISTS|RECENT)")


class RemoteError(DependencyError):
    """The external IMAP server is unreachable or refused a command."""


def read_password(path: Path, key: str) -> str:
    """The password (first line of the file). A file others may read is refused; one the
    group may read is used with a warning."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"mailsvc.toml: key '{key}': cannot read {path}: {exc}") from exc
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IROTH:
        raise ConfigError(
            f"mailsvc.toml: key '{key}': {path} is readable by every user (mode "
            f"{mode:04o}); run: chmod 600 {path}"
        )
    if mode & stat.S_IRGRP:
        log.warning("%s (%s) is readable by its group (mode %04o); chmod 600", path, key, mode)
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ConfigError(f"mailsvc.toml: key '{key}': {path} is empty")
    return password


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify the server (hostname included) against the system CAs or ``ca_file``; a
    CA file may also pin the server's own certificate (partial chains are accepted)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def encode_folder(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + data.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return quote("".join(out))


def quote(text: str) -> str:
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in an IMAP string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Greeting(asyncio.Protocol):
    """The plaintext part of a STARTTLS connection: greeting, STARTTLS, its reply."""

    def __init__(self) -> None:
        self.buffer = b""
        self.changed = asyncio.Event()
        self.closed = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.changed.set()

    async def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if self.closed:
                raise RemoteError("connection closed before STARTTLS")
            self.changed.clear()
            await self.changed.wait()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line


class _StartTlsImap(aioimaplib.IMAP4):
    """aioimaplib has no STARTTLS: do the plaintext exchange here, upgrade the transport,
    then hand aioimaplib's protocol the TLS transport and a greeting (it asks for the
    capabilities again, as RFC 3501 requires after STARTTLS)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        conn_lost_cb: Any,
        tls: ssl.SSLContext,
    ) -> None:
        self._tls = tls
        super().__init__(host, port, timeout=timeout, conn_lost_cb=conn_lost_cb)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(self._starttls(local_loop, host, port))

    async def _starttls(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        plain = _Greeting()
        transport, _ = await loop.create_connection(lambda: plain, host, port)
        try:
            greeting = await plain.line()
            if not greeting.startswith(b"* OK"):
                raise RemoteError(f"unexpected greeting {greeting[:80]!r} (STARTTLS needs * OK)")
            transport.write(b"S1 STARTTLS\r\n")
            reply = await plain.line()
            while reply.startswith(b"* "):
                reply = await plain.line()
            if not reply.startswith(b"S1 OK"):
                raise RemoteError(f"STARTTLS refused: {reply[:120]!r}")
            if plain.buffer:  # data injected before the handshake (CVE-2011-0411 style)
                raise RemoteError("plaintext data after the STARTTLS reply; refusing")
            secure = await loop.start_tls(transport, self.protocol, self._tls, server_hostname=host)
        except BaseException:
            transport.close()
            raise
        assert secure is not None
        self.protocol.connection_made(secure)
        self.protocol.data_received(b"* OK TLS established\r\n")


@dataclass
class Selected:
    """What SELECT told us about the folder."""

    uidvalidity: int
    uidnext: int
    exists: int


class RemoteSession:
    """A logged-in session with the folder selected; use as ``async with``."""

    def __init__(self, cfg: ExternalMailbox, password: str, ca_file: Path | None, timeout: float):
        self.cfg = cfg
        self._password = password
        self._ca_file = ca_file
        self.timeout = timeout
        self.lost = asyncio.Event()
        self.client: aioimaplib.IMAP4 | None = None
        self.selected: Selected | None = None
        self.peer_ip = ""

    @property
    def offers_idle(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    @property
    def tls(self) -> bool:
        return self.cfg.tls != "none"

    async def __aenter__(self) -> RemoteSession:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _on_lost(self, exc: Exception | None) -> None:
        self.lost.set()

    async def open(self) -> None:
        cfg = self.cfg
        where = f"{cfg.host}:{cfg.port}"
        if cfg.tls == "starttls":
            client: aioimaplib.IMAP4 = _StartTlsImap(
                cfg.host,
                cfg.port,
                timeout=self.timeout,
                conn_lost_cb=self._on_lost,
                tls=client_context(self._ca_file),
            )
        else:
            client = aioimaplib.IMAP4(
                cfg.host,
                cfg.port,
                timeout=self.timeout,
                conn_lost_cb=self._on_lost,
                ssl_context=client_context(self._ca_file) if cfg.tls == "implicit" else None,
            )
        self.client = client
        try:
            await client.wait_hello_from_server()
        except (OSError, TimeoutError, ssl.SSLError, aioimaplib.AioImapException) as exc:
            raise RemoteError(f"IMAP {where} unreachable: {type(exc).__name__}: {exc}") from exc
        transport = client.protocol.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.peer_ip = str(peer[0]) if peer else cfg.host
        reply = await client.login(quote(cfg.username), self._password)
        if reply.result != "OK":
            raise RemoteError(f"IMAP {where}: login as {cfg.username} refused: {_text(reply)}")
        await self.select()

    async def select(self) -> Selected:
        """(Re)select the folder: every poll does, so a folder rebuilt while we were in
        IDLE (a new UIDVALIDITY) is noticed at the next poll."""
        reply = await self._client().select(encode_folder(self.cfg.folder))
        if reply.result != "OK":
            raise RemoteError(
                f"IMAP {self.cfg.host}:{self.cfg.port}: folder {self.cfg.folder!r}: {_text(reply)}"
            )
        self.selected = _parse_select(reply.lines)
        return self.selected

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if not self.lost.is_set() and client.get_state() in ("AUTH", "SELECTED", "NONAUTH"):
                await client.logout()
        except Exception:  # boundary: the session is over either way
            log.debug("IMAP logout failed", exc_info=True)
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    def _client(self) -> aioimaplib.IMAP4:
        if self.client is None or self.lost.is_set():
            raise RemoteError(f"IMAP {self.cfg.host}:{self.cfg.port}: connection lost")
        return self.client

    async def new_messages(self, after: int) -> list[tuple[int, int]]:
        """(UID, size) of every message with a UID above ``after``, in UID order."""
        reply = await self._client().uid("fetch", f"{after + 1}:*", "(UID RFC822.SIZE)")
        _check(reply, "UID FETCH", self.cfg)
        found: dict[int, int] = {}
        for line in reply.lines:
            if not isinstance(line, bytes) or b"FETCH" not in line:
                continue
            uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
            if uid and size and int(uid.group(1)) > after:  # "n:*" always matches the last
                found[int(uid.group(1))] = int(size.group(1))
        return sorted(found.items())

    async def fetch(self, uid: int) -> bytes | None:
        """The message's bytes, or None when it no longer exists."""
        reply = await self._client().uid("fetch", str(uid), "(UID BODY.PEEK[])")
        _check(reply, "UID FETCH", self.cfg)
        current: int | None = None
        for line in reply.lines:
            if isinstance(line, bytearray):
                if current == uid:
                    return bytes(line)
                continue
            match = _FETCH_UID.search(line) if b"FETCH" in line else None
            if match:
                current = int(match.group(1))
        return None

    async def wait_for_news(self, seconds: float, wake: asyncio.Event) -> bool:
        """IDLE for up to ``seconds``; True when the server announced new mail. Returns
        early (False) when ``wake`` is set, the server ends IDLE or the connection is lost."""
        client = self._client()
        # aioimaplib fails no pending command when the connection drops: an IDLE sent just
        # as the server went away would wait for its acknowledgement for ever. Wait for it
        # beside the loss of the connection, at most the command timeout.
        starting = asyncio.ensure_future(client.idle_start(timeout=seconds + self.timeout))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait(
                [starting, lost], timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if not starting.done():
            starting.cancel()
            if self.lost.is_set():
                return False  # the caller sees ``lost`` and reconnects
            raise RemoteError(
                f"IMAP {self.cfg.host}:{self.cfg.port}: IDLE not acknowledged "
                f"in {self.timeout:.0f} s"
            )
        idle = starting.result()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        news = False
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self.lost.wait())]
        try:
            while not news:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                push = asyncio.ensure_future(client.wait_server_push(timeout=remaining))
                done, _ = await asyncio.wait(
                    [push, idle, *waiters], return_when=asyncio.FIRST_COMPLETED
                )
                if push not in done:
                    push.cancel()
                    break
                try:
                    lines = push.result()
                except TimeoutError:
                    break
                news = any(
                    isinstance(x, bytes | bytearray) and _NEWS.match(bytes(x)) for x in lines
                )
        finally:
            for waiter in waiters:
                waiter.cancel()
            if idle.done():
                if not idle.cancelled():
                    idle.exception()  # retrieved: the next command reports a broken session
            elif self.lost.is_set():
                idle.cancel()
            else:
                if client.has_pending_idle():
                    client.idle_done()
                await asyncio.wait_for(idle, self.timeout)
        return news


def _parse_select(lines: list[Any]) -> Selected:
    uidvalidity = uidnext = exists = 0
    for raw in lines:
        line = bytes(raw)
        if m := _UIDVALIDITY.search(line):
            uidvalidity = int(m.group(1))
        elif m := _UIDNEXT.search(line):
            uidnext = int(m.group(1))
        elif m := _EXISTS.match(line):
            exists = int(m.group(1))
    if not uidvalidity:
        raise RemoteError("SELECT reply has no UIDVALIDITY")
    return Selected(uidvalidity, uidnext, exists)


def _text(reply: aioimaplib.Response) -> str:
    return " ".join(bytes(x).decode("utf-8", "replace") for x in reply.lines).strip()[:200]


def _check(reply: aioimaplib.Response, what: str, cfg: ExternalMailbox) -> None:
    if reply.result != "OK":
        raise RemoteError(f"IMAP {cfg.host}:{cfg.port}: {what} failed: {_text(reply)}")
