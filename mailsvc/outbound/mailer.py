"""Mail the service itself writes: notices, alerts, reports and reminders.

One door for all of them: ``Mailer.send`` DKIM-signs (when a key is configured) and
hands the message to local delivery (Dovecot LMTP) for our own domains or to the
configured smarthost for the rest. Messages carry ``Auto-Submitted`` and a null
envelope sender, so no other system answers them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any, Protocol

import aiosmtplib

from mailsvc.delivery import LocalDelivery

log = logging.getLogger(__name__)


class Relay(Protocol):
    async def send(self, sender: str, recipient: str, data: bytes) -> None: ...


class SmtpRelay:
    """Remote mail goes to a configured smarthost (closed networks route by agency)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        await aiosmtplib.send(
            data,
            sender=sender,
            recipients=[recipient],
            hostname=self.host,
            port=self.port,
            start_tls=False,
            timeout=60,
        )


class Mailer:
    def __init__(
        self,
        local: LocalDelivery,
        *,
        is_local_domain: Callable[[str], bool],
        relay: Relay | None = None,
        signer: Any = None,
    ) -> None:
        self.local = local
        self.is_local_domain = is_local_domain
        self.relay = relay
        self.signer = signer  # mailsvc.outbound.dkim signer, when a DKIM key is configured
        self.sent: list[tuple[str, str]] = []  # (kind, recipient), for operators and tests

    async def send(self, message: EmailMessage, recipient: str, *, kind: str) -> None:
        data = message.as_bytes(policy=SMTP_POLICY)
        if self.signer is not None:
            data = self.signer.sign(data)
        domain = recipient.rpartition("@")[2].lower()
        if self.is_local_domain(domain):
            await self.local.deliver(recipient, data, sender="")
        elif self.relay is not None:
            await self.relay.send("", recipient, data)
        else:
            log.warning("%s to %s not sent: no outbound relay configured", kind, recipient)
            return
        self.sent.append((kind, recipient))
        log.info("%s sent to %s", kind, recipient)
