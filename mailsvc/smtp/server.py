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
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

from mailsvc.smtp import replies
from mailsvc.smtp.handler import ListenerMode, RateLimiter, SmtpHandler
from mailsvc.smtp.lookups import LoginOutcome, MailboxLookup
from mailsvc.time import iso_local

log = logging.getLogger(__name__)


@dataclass
class _Captured:
    credentials: LoginPassword


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
        **kwargs: Any,
    ) -> None:
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

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted_ip is not None:
            self._rate.close(self._counted_ip)
            self._counted_ip = None
        super().connection_lost(error)

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
) -> SmtpListener:
    implicit_tls = mode.name == "submissions"

    def factory() -> MailsvcSMTP:
        return MailsvcSMTP(
            handler,
            lookup=lookup,
            rate=rate,
            password_page_url=password_page_url,
            allow_plain_auth_on_loopback=allow_plain_auth_on_loopback,
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
        factory, host, port, ssl=tls if implicit_tls else None, reuse_address=True
    )
    return SmtpListener(mode, server)
