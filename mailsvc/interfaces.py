"""Small Protocols that stages and services are given; app.py wires the real objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailsvc.message import InboundMessage
from mailsvc.verdict import Finding


class Stage(Protocol):
    """One pipeline check. It observes and returns findings; it never acts."""

    name: str  # unique kebab-case; used in logs, policies, stored findings, headers
    description: str

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]: ...


@dataclass(frozen=True)
class AgencyInfo:
    """A read-only view of an agency in the directory, for stages."""

    code: str
    name: str
    domains: tuple[str, ...]
    known_addresses: tuple[str, ...] = ()
    dkim_keys: dict[str, str] = field(default_factory=dict)  # "sel._domainkey.dom" -> TXT record
    allowed_senders: tuple[str, ...] = ()  # IPs / CIDR networks allowed to send for the domains
    local: bool = False
    # allowed_senders and dkim_keys also cover subdomains of the domains (see
    # mailsvc.pipeline.authentication.covering_agency)
    include_subdomains: bool = False


class Directory(Protocol):
    """The agency directory as stages see it (cached, read-only)."""

    def agency_for_domain(self, domain: str) -> AgencyInfo | None: ...

    def is_local_domain(self, domain: str) -> bool: ...


class Resolver(Protocol):
    """DNS TXT lookups, injectable so tests use a loopback server or pinned data."""

    async def txt(self, name: str) -> Sequence[str]: ...


class VirusScanner(Protocol):
    async def scan(self, data: bytes) -> str | None:
        """Return the signature name if infected, None if clean; raise DependencyError if unable."""
        ...
