"""Where mail for another domain goes, and one SMTP transaction to get it there.

Routes, in order (architecture.md, "the second half"):
  1. a route pinned in the agency directory (``mailsvc agency update CODE --route``):
     a closed network has no public DNS;
  2. the domain's MX hosts through our resolver (RFC 5321 §5.1: no MX → the domain's
     own address; a null MX "." → the domain accepts no mail, a permanent failure);
  3. the configured smarthost (``[outbound] relay``).

TLS. An agency in the directory is reached only over STARTTLS with a certificate that
verifies against ``[outbound] tls_ca_file`` (or the system CAs) for the host we
connect to: a server that does not offer STARTTLS, or whose certificate does not
verify, is a temporary failure (retried, then bounced), never a plaintext fallback.
The smarthost is held to the same rule unless ``relay_starttls = false``. Other
domains get opportunistic TLS (encrypted when offered, certificate not required to
verify), as public MX hosts commonly present certificates for other names.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import aiosmtplib

from mailsvc.adapters.dns import DnsTemporaryError, OriginResolver
from mailsvc.errors import MailsvcError
from mailsvc.interfaces import Directory
from mailsvc.outbound import smtp_speedups

log = logging.getLogger(__name__)
smtp_speedups.install()  # aiosmtplib's passes over each message, skipped when idle


class TlsMode(str, Enum):
    VERIFY = "verify"  # STARTTLS required, certificate verified for the host
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, not verified
    NONE = "none"  # plain (a smarthost with relay_starttls = false)


@dataclass(frozen=True)
class Route:
    host: str  # the name the certificate is verified for (or an address)
    port: int
    tls: TlsMode
    via: str  # "directory" | "mx" | "smarthost"
    address: str = ""  # where we connect; "": ``host`` through the system resolver

    def __str__(self) -> str:
        return f"{self.via} {self.host}:{self.port} tls={self.tls.value}"


class RouteError(MailsvcError):
    """No route (yet): ``permanent`` when the domain cannot receive mail at all."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class RecipientResult:
    """The other server's answer for one recipient (``code`` 0: no answer at all)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


def split_route(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class RouteFinder:
    def __init__(
        self,
        directory: Directory,
        resolver: OriginResolver | None,
        *,
        mx_port: int = 25,
        smarthost: Route | None = None,
    ) -> None:
        self.directory = directory
        self.resolver = resolver
        self.mx_port = mx_port
        self.smarthost = smarthost

    async def routes(self, domain: str) -> list[Route]:
        """The routes to try for ``domain``, best first. Raises :class:`RouteError`."""
        domain = domain.strip().lower().rstrip(".")
        agency = self.directory.agency_for_domain(domain)
        known = agency is not None
        if agency is not None and agency.route:
            host, port = split_route(agency.route)
            addresses = await self._addresses(host) if self.resolver is not None else []
            return [
                Route(host, port, TlsMode.VERIFY, "directory", address)
                for address in addresses or [""]
            ]
        found: list[Route] = []
        if self.resolver is not None:
            try:
                exchanges = list(await self.resolver.mx(domain))
            except DnsTemporaryError as exc:
                raise RouteError(f"MX {domain}: {exc}", permanent=False) from exc
            if exchanges and all(x in ("", ".") for x in exchanges):
                raise RouteError(f"{domain} accepts no mail (null MX)", permanent=True)
            if not exchanges:
                try:
                    if await self.resolver.a(domain) or await self.resolver.aaaa(domain):
                        exchanges = [domain]
                except DnsTemporaryError as exc:
                    raise RouteError(f"A {domain}: {exc}", permanent=False) from exc
            tls = TlsMode.VERIFY if known else TlsMode.OPPORTUNISTIC
            for exchange in exchanges:
                if exchange in ("", "."):
                    continue
                for address in await self._addresses(exchange):
                    found.append(Route(exchange, self.mx_port, tls, "mx", address))
        if not found and self.smarthost is not None:
            found = [self.smarthost]
        if not found:
            raise RouteError(
                f"no route to {domain}: no route in the agency directory, no MX, no smarthost",
                permanent=self.resolver is not None,
            )
        return found

    async def _addresses(self, host: str) -> list[str]:
        """The host's addresses through our resolver (an address stands for itself);
        none found: the system resolver gets its chance at connect time."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        assert self.resolver is not None
        try:
            found = [*await self.resolver.a(host), *await self.resolver.aaaa(host)]
        except DnsTemporaryError as exc:
            log.warning("address of %s: %s", host, exc)
            return [""]
        return found or [""]


class SmtpTransport:
    """One SMTP transaction per (route, message): every recipient of one domain at once.

    Connections are kept for reuse (like Postfix's connection cache): after a transaction
    the connection, already past EHLO and STARTTLS, waits up to ``IDLE_SECONDS`` for the
    next message along the same route (at most ``POOL_PER_ROUTE`` idle ones per route).
    A reused connection the other side has meanwhile closed is replaced once.
    """

    IDLE_SECONDS = 30.0
    POOL_PER_ROUTE = 4

    def __init__(self, *, helo: str, timeout: float = 60.0, ca_file: str | None = None) -> None:
        self.helo = helo
        self.timeout = timeout
        self._verified = ssl.create_default_context(cafile=ca_file or None)
        self._verified.minimum_version = ssl.TLSVersion.TLSv1_2
        self._unverified = ssl.create_default_context()
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        self._idle: dict[tuple[str, int, str, str], list[tuple[float, aiosmtplib.SMTP]]] = {}
        self.opened = 0  # connections opened (for operators and tests)

    @staticmethod
    def _key(route: Route) -> tuple[str, int, str, str]:
        return (route.address or route.host, route.port, route.tls.value, route.host)

    async def _open(self, route: Route) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=route.address or route.host,
            port=route.port,
            local_hostname=self.helo,
            start_tls=False,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise RouteError(f"{route}: cannot connect: {exc}", permanent=False) from exc
        self.opened += 1
        try:
            await client.ehlo()
            await self._starttls(client, route)
        except aiosmtplib.SMTPResponseException as exc:
            await _close(client)
            raise RouteError(
                f"{route}: answered {exc.code} {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except RouteError:
            await _close(client)
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            await _close(client)
            raise RouteError(f"{route}: {type(exc).__name__}: {exc}", permanent=False) from exc
        return client

    def _take(self, route: Route) -> aiosmtplib.SMTP | None:
        idle = self._idle.get(self._key(route), [])
        now = time.monotonic()
        while idle:
            since, client = idle.pop()
            if now - since < self.IDLE_SECONDS and client.is_connected:
                return client
            client.close()
        return None

    def _give_back(self, route: Route, client: aiosmtplib.SMTP) -> None:
        idle = self._idle.setdefault(self._key(route), [])
        if len(idle) >= self.POOL_PER_ROUTE:
            client.close()
            return
        idle.append((time.monotonic(), client))

    async def close(self) -> None:
        """QUIT every idle connection (at shutdown)."""
        idle, self._idle = self._idle, {}
        for items in idle.values():
            for _, client in items:
                await _close(client)

    async def send(
        self, route: Route, sender: str, recipients: Sequence[str], data: bytes
    ) -> dict[str, RecipientResult]:
        """Each recipient's answer. Raises :class:`RouteError` when the conversation
        failed before any recipient was answered (connection, TLS, a 4xx/5xx to HELO,
        MAIL or DATA: then every recipient shares that answer)."""
        client = self._take(route)
        reused = client is not None
        if client is None:
            client = await self._open(route)
        try:
            # The client itself, not aiosmtplib.send: that refuses the null sender "".
            errors, _ = await client.sendmail(sender, list(recipients), data)
        except aiosmtplib.SMTPServerDisconnected as exc:
            client.close()
            if not reused:
                raise RouteError(f"{route}: {exc}", permanent=False) from exc
            return await self.send(route, sender, recipients, data)  # a fresh connection
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _close(client)
            return {r.recipient: RecipientResult(r.code, r.message) for r in exc.recipients}
        except aiosmtplib.SMTPResponseException as exc:
            await _close(client)
            raise RouteError(
                f"{route}: answered {exc.code} {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            client.close()
            raise RouteError(f"{route}: {type(exc).__name__}: {exc}", permanent=False) from exc
        self._give_back(route, client)
        results = {r: RecipientResult(250, "OK") for r in recipients}
        for rcpt, answer in errors.items():
            results[rcpt] = RecipientResult(answer.code, answer.message)
        return results

    async def _starttls(self, client: aiosmtplib.SMTP, route: Route) -> None:
        if route.tls is TlsMode.NONE:
            return
        if not client.supports_extension("starttls"):
            if route.tls is TlsMode.VERIFY:
                raise RouteError(
                    f"{route}: the server does not offer STARTTLS, which is required",
                    permanent=False,
                )
            log.warning("%s: no STARTTLS offered, sending in plain text", route)
            return
        context = self._verified if route.tls is TlsMode.VERIFY else self._unverified
        try:
            await client.starttls(server_hostname=_tls_name(route.host), tls_context=context)
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise RouteError(f"{route}: STARTTLS failed: {exc}", permanent=False) from exc


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def _tls_name(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
