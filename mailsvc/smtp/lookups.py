"""Database look-ups the SMTP dialogue needs (recipients, senders, logins), run off the
event loop and cached briefly so the hot path stays cheap.

Which domains are ours comes from the agency directory's snapshot when one is given (no
database at all); mailbox look-ups are read-only transactions (``db.session.reading``) that
never queue behind message acceptance for SQLite's write lock."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import PasswordSection
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import reading
from mailsvc.interfaces import Directory
from mailsvc.lockout import Lockout
from mailsvc.passwords import dummy_hash, verify_password

CACHE_SECONDS = 2.0


class RecipientStatus(Enum):
    LOCAL = "local"
    UNKNOWN = "unknown"  # local domain, no such mailbox
    DISABLED = "disabled"
    REMOTE = "remote"  # not one of our domains


class LoginOutcome(Enum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"
    MUST_CHANGE = "must-change"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    address: str = ""
    locked_until: datetime | None = None


class MailboxLookup:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        local_domains: tuple[str, ...],
        lockout: Lockout,
        password_cfg: PasswordSection | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.sessions = sessions
        self.directory = directory
        # Unknown addresses are verified against a hash of the same cost as real ones:
        # skipping the hash would tell an attacker which addresses exist (timing).
        self._dummy_hash = dummy_hash(password_cfg or PasswordSection())
        self.primary_domains = tuple(d.lower() for d in local_domains)
        self.lockout = lockout
        self._cache: dict[str, tuple[float, object]] = {}

    def _cached(self, key: str) -> object | None:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _store(self, key: str, value: object) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + CACHE_SECONDS, value)

    async def is_local_domain(self, domain: str) -> bool:
        domain = domain.lower()
        if domain in self.primary_domains:
            return True
        if self.directory is not None:
            return self.directory.is_local_domain(domain)
        return domain in await self.local_domains()

    async def local_domains(self) -> frozenset[str]:
        cached = self._cached("domains")
        if isinstance(cached, frozenset):
            return cached
        domains = await asyncio.to_thread(self._local_domains_sync)
        self._store("domains", domains)
        return domains

    def _local_domains_sync(self) -> frozenset[str]:
        with reading(self.sessions) as session:
            rows = session.scalars(select(Agency).where(Agency.local.is_(True))).all()
            domains = {d.lower() for a in rows for d in a.domains}
        return frozenset(domains | set(self.primary_domains))

    async def recipient_status(self, address: str) -> RecipientStatus:
        address = address.lower()
        domain = address.rpartition("@")[2]
        if not await self.is_local_domain(domain):
            return RecipientStatus.REMOTE
        cached = self._cached("rcpt:" + address)
        if isinstance(cached, RecipientStatus):
            return cached
        status = await asyncio.to_thread(self._recipient_status_sync, address)
        self._store("rcpt:" + address, status)
        return status

    def _recipient_status_sync(self, address: str) -> RecipientStatus:
        with reading(self.sessions) as session:
            box = session.scalars(select(Mailbox).where(Mailbox.address == address)).one_or_none()
        if box is None or box.removed:
            return RecipientStatus.UNKNOWN
        if not box.enabled:
            return RecipientStatus.DISABLED
        return RecipientStatus.LOCAL

    async def may_send_as(self, login: str, address: str) -> bool:
        """The mailbox itself, or an alias its agency allows."""
        address = address.lower()
        if not address:
            return False
        if address == login.lower():
            return True
        key = f"alias:{login}:{address}"
        cached = self._cached(key)
        if isinstance(cached, bool):
            return cached
        allowed = await asyncio.to_thread(self._may_send_as_sync, login.lower(), address)
        self._store(key, allowed)
        return allowed

    def _may_send_as_sync(self, login: str, address: str) -> bool:
        with reading(self.sessions) as session:
            box = session.scalars(select(Mailbox).where(Mailbox.address == login)).one_or_none()
            if box is None or box.agency is None:
                return False
            return address in {a.lower() for a in box.agency.aliases}

    async def authenticate(self, login: str, password: str, client_ip: str) -> LoginResult:
        return await asyncio.to_thread(self._authenticate_sync, login.lower(), password, client_ip)

    def _authenticate_sync(self, login: str, password: str, client_ip: str) -> LoginResult:
        with self.sessions.begin() as session:
            until = self.lockout.locked_until(session, login, client_ip)
            if until is not None:
                return LoginResult(LoginOutcome.LOCKED, login, until)
            box = session.scalars(select(Mailbox).where(Mailbox.address == login)).one_or_none()
            known = box is not None and not box.removed and bool(box.password_hash)
            stored = box.password_hash if known and box is not None else self._dummy_hash
            if not verify_password(stored, password) or not known or box is None:
                until = self.lockout.record_failure(session, login, client_ip)
                if until is not None:
                    return LoginResult(LoginOutcome.LOCKED, login, until)
                return LoginResult(LoginOutcome.INVALID, login)
            if not box.enabled:
                return LoginResult(LoginOutcome.DISABLED, login)
            self.lockout.record_success(session, login, client_ip)
            expired = box.password_expires_at is not None and box.password_expires_at < utcnow()
            if box.must_change or expired:
                return LoginResult(LoginOutcome.MUST_CHANGE, login)
            return LoginResult(LoginOutcome.OK, login)
