"""InboundMessage: the envelope, the raw bytes and a parsed view. Read-only."""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from enum import Enum
from functools import cached_property


class Direction(str, Enum):
    INBOUND = "inbound"  # from another MTA on port 25
    SUBMISSION = "submission"  # from an authenticated official
    FETCHED = "fetched"  # pulled from an external mailbox


@dataclass(frozen=True)
class InboundMessage:
    queue_id: str
    mail_from: str  # "" for the null sender
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime  # UTC, timezone-aware
    client_ip: str = ""
    client_helo: str = ""
    authenticated_as: str | None = None
    direction: Direction = Direction.INBOUND
    tls: bool = False

    @cached_property
    def parsed(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @cached_property
    def headers(self) -> EmailMessage:
        """The top-level header block only (cheap: the body is not parsed)."""
        msg = BytesParser(policy=email.policy.default).parsebytes(self.raw, headersonly=True)
        assert isinstance(msg, EmailMessage)
        return msg

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def message_id(self) -> str:
        value = self.headers.get("Message-ID", "")
        return str(value).strip()

    @property
    def sender_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()

    @property
    def from_address(self) -> str:
        """The first address in From:, lower-cased, or "" when missing or unparsable."""
        try:
            header = self.headers["From"]
            addresses = getattr(header, "addresses", ())
        except (ValueError, IndexError, TypeError):
            return ""
        if not addresses:
            return ""
        return str(addresses[0].addr_spec).lower()
