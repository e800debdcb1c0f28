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
from collections.abc import Awaitable, Callable
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
_LITERAL = re.compile(rb"\{(\d+)\}$")

RESPONSE_MARGIN = 64 * 1024  # a response may exceed the message limit by this much
LIST_BATCH = 200  # UIDs per listing: aioimaplib parses one read recursively, line by line


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


class _TooLarge(Exception):
    """The server announced a literal larger than the response limit."""


class _GuardedProtocol(aioimaplib.IMAP4ClientProtocol):
    """aioimaplib's protocol, bounded. It buffers a whole response (literals included)
    before anyone sees it, fails no pending command when the connection drops, and its
    recursive parser raises RecursionError on a read of more than ~1,000 lines. Here:
    a literal announced larger than ``max_response``, or more than ``max_response``
    bytes received for one command, aborts the connection before they are read; a
    parser failure is a protocol error; a lost connection fails every pending command."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn_lost_cb: Callable[[Exception | None], None] | None,
        max_response: int,
    ) -> None:
        super().__init__(loop, conn_lost_cb)
        self.max_response = max_response
        self.received = 0  # bytes received since the last command was sent
        self.failure = ""  # why the connection was dropped, "" while it is up

    def send(self, line: str, scrub: str | None = None) -> None:
        self.received = 0
        super().send(line, scrub)

    def data_received(self, d: bytes) -> None:
        if self.failure:
            return
        self.received += len(d)
        if self.received > self.max_response:
            self.abort(f"response larger than {self.max_response} bytes")
            return
        try:
            super().data_received(d)
        except _TooLarge as exc:
            self.abort(str(exc))
        except RecursionError:
            self.abort("protocol error: too many lines in one read to parse")
        except aioimaplib.AioImapException as exc:
            self.abort(f"protocol error: {exc}")

    def _handle_line(self, line: bytes, current_cmd: Any) -> Any:
        literal = _LITERAL.search(line)
        if literal and int(literal.group(1)) > self.max_response:
            raise _TooLarge(
                f"literal of {int(literal.group(1))} bytes announced, larger than "
                f"the limit of {self.max_response} bytes"
            )
        return super()._handle_line(line, current_cmd)

    def abort(self, reason: str) -> None:
        """Drop the connection now, failing every pending command with ``reason``."""
        if not self.failure:
            self.failure = reason
            log.warning("IMAP connection dropped: %s", reason)
        if self.transport is not None:
            self.transport.abort()
        self._fail_pending()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.failure:
            self.failure = f"connection lost ({exc})" if exc else "connection lost"
        self._fail_pending()
        super().connection_lost(exc)

    def _fail_pending(self) -> None:
        sync: Any = getattr(self, "pending_sync_command", None)
        commands: list[Any] = [sync, *self.pending_async_commands.values()]
        self.pending_sync_command = None
        self.pending_async_commands.clear()
        for command in commands:
            if command is not None and not command._event.is_set():
                # aioimaplib's own way of failing a command (see Command._timeout_callback)
                command._exception = aioimaplib.Abort(self.failure)
                command.close(self.failure.encode(), "BYE")


def _guarded_client(
    client: aioimaplib.IMAP4,
    loop: asyncio.AbstractEventLoop,
    conn_lost_cb: Any,
    max_response: int,
) -> _GuardedProtocol:
    protocol = _GuardedProtocol(loop, conn_lost_cb, max_response)
    client.protocol = protocol
    return protocol


class _Imap(aioimaplib.IMAP4):
    """aioimaplib's client on the bounded protocol (implicit TLS or plain)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        conn_lost_cb: Any,
        ssl_context: ssl.SSLContext | None,
        max_response: int,
    ) -> None:
        self._max_response = max_response
        super().__init__(
            host, port, timeout=timeout, conn_lost_cb=conn_lost_cb, ssl_context=ssl_context
        )

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        protocol = _guarded_client(self, local_loop, conn_lost_cb, self._max_response)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: protocol, host, port, ssl=ssl_context)
        )


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
        max_response: int,
    ) -> None:
        self._tls = tls
        self._max_response = max_response
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
        _guarded_client(self, local_loop, conn_lost_cb, self._max_response)
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
    """A logged-in session with the folder selected; use as ``async with``.

    Every command has an overall deadline of ``timeout`` seconds; no response may be
    larger than ``max_size`` (the message limit) plus a small margin. Either breach, a
    protocol error or a lost connection drops the connection and raises RemoteError."""

    def __init__(
        self,
        cfg: ExternalMailbox,
        password: str,
        ca_file: Path | None,
        timeout: float,
        *,
        max_size: int,
    ) -> None:
        self.cfg = cfg
        self._password = password
        self._ca_file = ca_file
        self.timeout = timeout
        self.max_size = max_size
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
                max_response=self.max_size + RESPONSE_MARGIN,
            )
        else:
            client = _Imap(
                cfg.host,
                cfg.port,
                timeout=self.timeout,
                conn_lost_cb=self._on_lost,
                ssl_context=client_context(self._ca_file) if cfg.tls == "implicit" else None,
                max_response=self.max_size + RESPONSE_MARGIN,
            )
        self.client = client
        try:
            await client.wait_hello_from_server()
        except (OSError, TimeoutError, ssl.SSLError, aioimaplib.AioImapException) as exc:
            raise RemoteError(f"IMAP {where} unreachable: {type(exc).__name__}: {exc}") from exc
        transport = client.protocol.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.peer_ip = str(peer[0]) if peer else cfg.host
        reply = await self._run("LOGIN", lambda c: c.login(quote(cfg.username), self._password))
        if reply.result != "OK":
            raise RemoteError(f"IMAP {where}: login as {cfg.username} refused: {_text(reply)}")
        await self.select()

    async def select(self) -> Selected:
        """(Re)select the folder: every poll does, so a folder rebuilt while we were in
        IDLE (a new UIDVALIDITY) is noticed at the next poll."""
        folder = encode_folder(self.cfg.folder)
        reply = await self._run("SELECT", lambda c: c.select(folder))
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
            raise RemoteError(f"IMAP {self.cfg.host}:{self.cfg.port}: {self._failure()}")
        return self.client

    def _failure(self) -> str:
        protocol = self.client.protocol if self.client is not None else None
        failure = protocol.failure if isinstance(protocol, _GuardedProtocol) else ""
        return failure or "connection lost"

    def _drop(self, reason: str) -> None:
        """Abort the connection: a command left half-answered makes the session unusable."""
        self.lost.set()
        protocol = self.client.protocol if self.client is not None else None
        if isinstance(protocol, _GuardedProtocol):
            protocol.abort(reason)
        elif protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def _run(
        self, what: str, command: Callable[[aioimaplib.IMAP4], Awaitable[aioimaplib.Response]]
    ) -> aioimaplib.Response:
        """One command under an overall deadline; any failure drops the connection."""
        client = self._client()
        where = f"IMAP {self.cfg.host}:{self.cfg.port}"
        try:
            async with asyncio.timeout(self.timeout):
                return await command(client)
        except TimeoutError as exc:
            reason = f"{what}: no complete answer in {self.timeout:.0f} s"
            self._drop(reason)
            raise RemoteError(f"{where}: {reason}") from exc
        except aioimaplib.AioImapException as exc:
            self._drop(f"{what}: {exc}")
            raise RemoteError(f"{where}: {what}: {self._failure()}") from exc

    async def new_messages(self, after: int) -> list[tuple[int, int]]:
        """(UID, size) of every message with a UID above ``after``, in UID order: UID
        SEARCH, then the sizes ``LIST_BATCH`` UIDs at a time (no huge response)."""
        reply = await self._run(
            "UID SEARCH", lambda c: c.uid_search("UID", f"{after + 1}:*", charset=None)
        )
        _check(reply, "UID SEARCH", self.cfg)
        uids: set[int] = set()
        for line in reply.lines[:-1]:  # aioimaplib keeps "1 2 3" of "* SEARCH 1 2 3"
            words = bytes(line).split()
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            if words and all(w.isdigit() for w in words):
                uids.update(int(w) for w in words)
        wanted = sorted(u for u in uids if u > after)  # "n:*" always matches the last
        found: dict[int, int] = {}
        for start in range(0, len(wanted), LIST_BATCH):
            batch = wanted[start : start + LIST_BATCH]
            found.update(await self._sizes(batch))
        return sorted(found.items())

    async def _sizes(self, uids: list[int]) -> dict[int, int]:
        reply = await self._run(
            "UID FETCH", lambda c: c.uid("fetch", _uid_set(uids), "(UID RFC822.SIZE)")
        )
        _check(reply, "UID FETCH", self.cfg)
        asked = set(uids)
        found: dict[int, int] = {}
        for line in reply.lines:
            if not isinstance(line, bytes) or b"FETCH" not in line:
                continue
            uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
            if uid and size and int(uid.group(1)) in asked:
                found[int(uid.group(1))] = int(size.group(1))
        return found

    async def fetch(self, uid: int) -> bytes | None:
        """The message's bytes, or None when it no longer exists. At most ``max_size + 1``
        bytes are asked for: a longer result means the message is over the limit."""
        part = f"(UID BODY.PEEK[]<0.{self.max_size + 1}>)"
        reply = await self._run("UID FETCH", lambda c: c.uid("fetch", str(uid), part))
        _check(reply, "UID FETCH", self.cfg)
        current: int | None = None
        for line in reply.lines:
            if isinstance(line, bytearray):
                if current == uid:
                    if len(line) > self.max_size + 1:
                        reason = (
                            f"body of {len(line)} bytes, more than the {self.max_size + 1} asked"
                        )
                        self._drop(reason)
                        raise RemoteError(f"IMAP {self.cfg.host}:{self.cfg.port}: {reason}")
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
        if self.lost.is_set():  # pending commands were failed with the connection
            if starting.done():
                if not starting.cancelled():
                    starting.exception()
            else:
                starting.cancel()
            return False  # the caller sees ``lost`` and reconnects
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


def _uid_set(uids: list[int]) -> str:
    """Sorted UIDs as an IMAP sequence set, runs folded ("1:3,7")."""
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs)


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
