"""Another agency's mail server for tests: aiosmtpd on loopback, STARTTLS offered (or not),
recording each transaction and answering RCPT as told."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import SMTP as SmtpProtocol
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession

from tests.tlsutil import write_self_signed


@dataclass
class Transaction:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one per connection


@dataclass
class RemoteSink:
    transactions: list[Transaction] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # RCPT answer by address
    connections: list[SmtpProtocol] = field(default_factory=list)

    def drop_connections(self) -> None:
        """Close every connection from the server's side (a restart, an idle timeout)."""
        for protocol in self.connections:
            if protocol.transport is not None:
                protocol.transport.close()

    async def handle_RCPT(
        self,
        server: SmtpProtocol,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        answer = self.answers.get(address.lower())
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SmtpProtocol, session: SmtpSession, envelope: Envelope
    ) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        peer = session.peer if isinstance(session.peer, tuple) else ("", 0)
        self.transactions.append(
            Transaction(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                content,
                session.ssl is not None,
                (str(peer[0]), int(peer[1])),
            )
        )
        return "250 2.0.0 accepted"

    @property
    def recipients(self) -> list[str]:
        return [r for t in self.transactions for r in t.rcpt_tos]


def sink_tls(directory: Path, hostname: str = "mx.remote.test") -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate (also valid for 127.0.0.1);
    returns it and the certificate's path (the CA file a client must trust)."""
    cert, key = directory / "sink-cert.pem", directory / "sink-key.pem"
    write_self_signed(cert, key, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


async def start_remote_sink(
    sink: RemoteSink, tls: ssl.SSLContext | None, host: str = "127.0.0.1", port: int = 0
) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    def protocol() -> SmtpProtocol:
        made = SmtpProtocol(sink, hostname="mx.remote.test", tls_context=tls)
        sink.connections.append(made)
        return made

    return await loop.create_server(protocol, host, port)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
