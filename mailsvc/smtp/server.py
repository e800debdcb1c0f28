"""aiosmtpd listeners: inbound (STARTTLS offered), submission (STARTTLS + AUTH) and
submissions (implicit TLS + AUTH). Credentials are checked off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import ssl
from dataclasses import dataclass
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from functools import lru_cache
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, syntax

from mailsvc.smtp import replies
from mailsvc.smtp.handler import ListenerMode, RateLimiter, SmtpHandler
from mailsvc.smtp.lookups import LoginOutcome, MailboxLookup
from mailsvc.time import iso_local

log = logging.getLogger(__name__)


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    """aiosmtpd 1.4 still sets ``Session.login_data`` at each successful AUTH and logs a
    deprecation warning for it; we read ``auth_data`` only, so the line says nothing."""
    return not str(record.msg).startswith("Session.login_data is deprecated")


logging.getLogger("mail.log").addFilter(_not_login_data_deprecation)


@dataclass
class _Captured:
    credentials: LoginPassword


class Sessions:
    """Every open SMTP session of this process, so that shutdown can be orderly.

    On SIGTERM (:meth:`close`): idle sessions are told ``421`` and closed at once; a
    session in DATA (receiving the message or waiting for the pipeline and the
    commit) finishes, gets its answer (250/4xx/5xx), then ``421`` and the close.
    Whatever is still in DATA after ``grace`` seconds is told ``421`` and closed:
    nothing was acknowledged, so the sender retries.
    """

    def __init__(self) -> None:
        self._open: set[MailsvcSMTP] = set()
        self._in_data: set[MailsvcSMTP] = set()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.closing = False

    def add(self, session: MailsvcSMTP) -> None:
        self._open.add(session)

    def discard(self, session: MailsvcSMTP) -> None:
        self._open.discard(session)
        self.leave_data(session)

    def enter_data(self, session: MailsvcSMTP) -> None:
        self._in_data.add(session)
        self._quiet.clear()

    def leave_data(self, session: MailsvcSMTP) -> None:
        self._in_data.discard(session)
        if not self._in_data:
            self._quiet.set()

    @property
    def count(self) -> int:
        return len(self._open)

    async def close(self, grace: float) -> None:
        self.closing = True
        for session in list(self._open - self._in_data):
            session.say_goodbye()
        if self._in_data:
            log.info(
                "shutdown: waiting up to %.0fs for %d session(s) in DATA", grace, len(self._in_data)
            )
            try:
                await asyncio.wait_for(self._quiet.wait(), grace)
            except TimeoutError:
                log.warning(
                    "shutdown: %d session(s) still in DATA after %.0fs; closing them with 421",
                    len(self._in_data),
                    grace,
                )
        for session in list(self._open):
            session.say_goodbye()


class MailsvcSMTP(SMTP):
    """aiosmtpd's SMTP with asynchronous credential checks, per-IP connection limits
    and plain-text AUTH on loopback only when the configuration allows it."""

    def __init__(
        self,
        handler: SmtpHandler,
        *,
        lookup: MailboxLookup,
        rate: RateLimiter,
        password_page_url: str,
        allow_plain_auth_on_loopback: bool,
        sessions: Sessions | None = None,
        **kwargs: Any,
    ) -> None:
        self._sessions = sessions or Sessions()
        self._lookup = lookup
        self._rate = rate
        self._password_page_url = password_page_url
        self._allow_loopback_plain = allow_plain_auth_on_loopback
        self._counted_ip: str | None = None
        super().__init__(handler, authenticator=self._capture, **kwargs)

    @staticmethod
    def _capture(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        # aiosmtpd calls the authenticator synchronously; we only capture the
        # credentials here and check them asynchronously in _finish_auth.
        return AuthResult(success=False, handled=False, auth_data=_Captured(data))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            return  # STARTTLS re-entry: already counted
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else ""
        if transport.get_extra_info("ssl_object") is not None:
            # Implicit TLS (port 465): the connection is already encrypted.
            assert self.session is not None
            self.session.ssl = transport.get_extra_info("ssl_object")
            self._auth_require_tls = False
        if self._allow_loopback_plain and _is_loopback(ip):
            self._auth_require_tls = False
            self.require_starttls = False
        if not self._rate.open(ip):
            log.warning("connection limit: refusing %s", ip)
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write((replies.TOO_MANY_CONNECTIONS + "\r\n").encode())
            transport.close()
            return
        self._counted_ip = ip
        self._sessions.add(self)

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and not valid_helo(hostname):
            await self.push(replies.BAD_HELO)
            return
        await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname and not valid_helo(hostname):
            await self.push(replies.BAD_HELO)
            return
        await super().smtp_EHLO(hostname)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parse of a MAIL FROM / RCPT TO argument, remembered: its version
        builds a class on every call and the email package's address grammar walks the
        same few senders and recipients again and again (a twentieth of this process's
        CPU for plain mail). Same results: the parse is a pure function of the text and
        of the local part's length limit."""
        return _parse_path(arg, self.local_part_limit)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        if self._counted_ip is not None:
            self._rate.close(self._counted_ip)
            self._counted_ip = None
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA, read in large pieces rather than aiosmtpd's line at a time (a 300 KB
        document is some 4,000 lines: one ``readuntil`` and a few Python statements per
        line were a fifth of this process's CPU). Same answers as aiosmtpd's: 503/501
        before the 354, then ``500 Line too long`` or ``552 Too much mail data`` once the
        whole message has been read (RFC 5321 4.2.5), else the handler's reply.

        DATA counts as "in progress" for shutdown until its answer is written."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.DATA_SYNTAX)
            return
        self._sessions.enter_data(self)
        try:
            await self.push(replies.START_DATA)
            content, problem = await read_data(
                self._reader, self.data_size_limit, self.line_length_limit
            )
            if problem is not None:
                await self.push(problem)
                self._set_post_data_state()
                return
            self.envelope.content = content
            self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(replies.OK if status is MISSING else status)
        finally:
            self._sessions.leave_data(self)
        if self._sessions.closing:
            self.say_goodbye()

    def say_goodbye(self) -> None:
        """Shutdown: ``421`` and close (the client may retry elsewhere or later)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write((replies.SHUTTING_DOWN.format(hostname=self.hostname) + "\r\n").encode())
        transport.close()

    def _timeout_cb(self) -> None:
        """aiosmtpd's idle/DATA timeout (``smtp.data_timeout_seconds``, counted from the
        start of each command, so a client dribbling DATA cannot hold a slot longer):
        say ``421`` before closing, as RFC 5321 4.5.3.2 asks."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write((replies.TIMEOUT.format(hostname=self.hostname) + "\r\n").encode())
        super()._timeout_cb()

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._finish_auth(await super().auth_LOGIN(_, args))

    async def _finish_auth(self, result: AuthResult) -> AuthResult:
        captured = result.auth_data
        if not isinstance(captured, _Captured):
            return result  # syntax error already answered, or the client aborted
        try:
            login = captured.credentials.login.decode("utf-8")
            password = captured.credentials.password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        assert self.session is not None
        peer = self.session.peer
        ip = str(peer[0]) if isinstance(peer, tuple) else ""
        outcome = await self._lookup.authenticate(login, password, ip)
        if outcome.outcome is LoginOutcome.OK:
            log.info("AUTH ok for %s from %s", outcome.address, ip)
            return AuthResult(success=True, auth_data=LoginPassword(outcome.address.encode(), b""))
        log.warning("AUTH %s for %s from %s", outcome.outcome.value, login, ip)
        if outcome.outcome is LoginOutcome.LOCKED and outcome.locked_until:
            message = replies.AUTH_LOCKED.format(until=iso_local(outcome.locked_until))
        elif outcome.outcome is LoginOutcome.MUST_CHANGE:
            message = replies.AUTH_MUST_CHANGE.format(url=self._password_page_url)
        elif outcome.outcome is LoginOutcome.DISABLED:
            message = replies.AUTH_DISABLED
        else:
            message = replies.AUTH_INVALID
        return AuthResult(success=False, handled=False, message=message)


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> tuple[bytes, str | None]:
    """The message of a DATA command, up to the lone ``.`` line, dot-unstuffed (RFC 5321
    4.5.2), and ``None``; or ``b""`` and the reply when a line is longer than
    ``line_limit`` bytes (CRLF included) or the message longer than ``size_limit``. What
    the client sent after the ``.`` line (pipelined commands) stays in ``reader``.

    The data is taken in pieces that end at ``.<CR><LF>``: ``readuntil`` finds those in C
    over whatever has arrived, so a base64 attachment is one piece, and a text whose lines
    end with a full stop a few more. While reading, the reader's limit (its line-length
    limit for commands, which also bounds how much it buffers before pausing the socket) is
    raised to the message size limit, and put back after.
    """
    limit = size_limit or (1 << 30)
    saved: int = reader._limit  # type: ignore[attr-defined]  # no public setter
    reader._limit = limit + 8  # type: ignore[attr-defined]
    pieces: list[bytes] = []
    size = 0
    problem: str | None = None
    tail = b""  # the last two bytes taken, to see whether a "." starts a line
    try:
        while True:
            try:
                piece = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as overrun:
                piece = await reader.read(overrun.consumed)  # no end in sight: drop it
                problem = problem or replies.DATA_TOO_LARGE
                pieces.clear()
                tail = piece[-2:]
                continue
            size += len(piece)
            ends = (len(piece) == 3 and tail in (b"", b"\r\n")) or piece.endswith(b"\r\n.\r\n")
            if problem is None and size - 3 * ends > limit:
                problem = replies.DATA_TOO_LARGE
                pieces.clear()
            if problem is None:
                pieces.append(piece)
            tail = (tail + piece)[-2:]
            if ends:
                break
    finally:
        reader._limit = saved  # type: ignore[attr-defined]
    if problem is not None:
        return b"", problem
    data = b"".join(pieces)[:-3]  # without the ".\r\n" that ended it
    if has_long_line(data, line_limit - 2):
        return b"", replies.LINE_TOO_LONG
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n"), None


def has_long_line(data: bytes, longest: int) -> bool:
    """Whether a line of ``data`` (the bytes between two CRLFs) is longer than
    ``longest`` bytes, without splitting ``data`` into lines (0.05 against 0.19 ms for a
    300 KB message): a line that long covers a whole block of ``(longest + 1) // 2``
    bytes starting at a multiple of that size, so only a block with no CRLF in it can
    lie in one, and the lines around such a block are measured."""
    n = len(data)
    if n <= longest:
        return False
    step = max(1, (longest + 1) // 2)
    find = data.find
    # Text whose lines are all near the limit makes most blocks worth a look: past this
    # many looks, one split of the whole is cheaper (at most about 1.3 splits' work).
    looks = n // (8 * step) + 8
    for start in range(0, n - step + 1, step):
        if find(b"\r\n", start, start + step) != -1:
            continue
        if not looks:
            return max(map(len, data.split(b"\r\n"))) > longest
        looks -= 1
        # The lines across the block and ``longest + 2`` bytes each side of it: a line
        # holding the block shows at least ``longest + 1`` of its bytes in the window.
        # The window's ends are moved off the middle of a CRLF (whose halves would
        # count as a line's bytes).
        low = max(0, start - longest - 2)
        if low and data[low - 1 : low + 1] == b"\r\n":
            low -= 1
        high = min(n, start + step + longest + 2)
        if high < n and data[high - 1 : high + 1] == b"\r\n":
            high += 1
        if max(map(len, data[low:high].split(b"\r\n"))) > longest:
            return True
    return False


@lru_cache(maxsize=4096)
def _parse_path(arg: str, local_part_limit: int) -> tuple[str | None, str | None]:
    """``(address, rest)`` of an SMTP path argument as aiosmtpd's ``SMTP._getaddr`` reads
    it (``<a@b> SIZE=10`` or a bare ``a@b``), ``("", "")`` for an empty argument, or
    ``(None, None)`` when it cannot be read or its local part is longer than
    ``local_part_limit`` (0: no limit)."""
    if not arg:
        return "", ""
    try:
        parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
        address, rest = parse(arg)
    except HeaderParseError:
        return None, None
    addr: str = address.addr_spec
    localpart, _, _ = addr.rpartition("@")
    if local_part_limit and len(localpart) > local_part_limit:
        return None, None
    return addr, rest


# RFC 5321 4.1.2: Domain / address-literal. Underscores are tolerated (common in
# Windows host names); control characters, spaces and anything else are not: the name
# goes into our Received: trace header.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_LITERAL = re.compile(r"\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9.]+)\]")


def valid_helo(hostname: str) -> bool:
    """Whether a HELO/EHLO argument is a domain name or an address literal."""
    if len(hostname) > 255:
        return False
    if _LITERAL.fullmatch(hostname):
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(hostname[1:-1].removeprefix("IPv6:"))
            return True
        return False
    return _DOMAIN.fullmatch(hostname) is not None


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


@dataclass
class SmtpListener:
    mode: ListenerMode
    server: asyncio.Server

    @property
    def address(self) -> tuple[str, int]:
        sock = self.server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])


async def start_listener(
    mode: ListenerMode,
    host: str,
    port: int,
    handler: SmtpHandler,
    *,
    lookup: MailboxLookup,
    rate: RateLimiter,
    tls: ssl.SSLContext,
    hostname: str,
    data_size_limit: int,
    password_page_url: str,
    allow_plain_auth_on_loopback: bool,
    timeout: float,
    sessions: Sessions | None = None,
    reuse_port: bool = False,
) -> SmtpListener:
    """Listen on ``host:port``. ``reuse_port``: bind with SO_REUSEPORT, so that other
    processes bound the same way share the port (the kernel spreads the connections)."""
    implicit_tls = mode.name == "submissions"

    def factory() -> MailsvcSMTP:
        return MailsvcSMTP(
            handler,
            lookup=lookup,
            rate=rate,
            password_page_url=password_page_url,
            allow_plain_auth_on_loopback=allow_plain_auth_on_loopback,
            sessions=sessions,
            hostname=hostname,
            ident="mailsvc ESMTP",
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            tls_context=None if implicit_tls else tls,
            require_starttls=mode.auth_required and not implicit_tls,
            auth_required=mode.auth_required,
            auth_require_tls=True,
            timeout=timeout,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        host,
        port,
        ssl=tls if implicit_tls else None,
        reuse_address=True,
        reuse_port=reuse_port or None,
    )
    return SmtpListener(mode, server)
