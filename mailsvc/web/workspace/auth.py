"""Signing in to the workspace with the mailbox account.

The address and password are checked against our database (argon2, a dummy hash for
unknown addresses so both cost the same), under the same lock-out rows as SMTP AUTH,
IMAP and the password page. A one-time (or expired) password is not accepted here: the
person is sent to the password page first. A session is a random token in a
``__Host-`` cookie (HttpOnly, Secure, SameSite=Strict); the database keeps its SHA-256
and a per-session CSRF token that every form carries. Sign-in, sign-out and refused
attempts are written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.accounts import _dummy_hash, get_mailbox
from mailsvc.config import PasswordSection, WorkspaceSection
from mailsvc.db.base import utcnow
from mailsvc.db.models import Mailbox
from mailsvc.errors import NotFoundError
from mailsvc.passwords import verify_password
from mailsvc.register.models import Register
from mailsvc.web.password import PageLimits
from mailsvc.web.workspace.models import WebSession

log = logging.getLogger(__name__)

SESSION_COOKIE = "__Host-mailsvc-ws"


@dataclass(frozen=True)
class Person:
    """Who is signed in: plain values read once per request."""

    address: str
    full_name: str
    role: str  # official | clerk | leader | admin
    unit: str
    csrf: str
    register_ids: tuple[int, ...] = ()  # the registers of the person's agency (or domain)
    agency_id: int | None = None

    @property
    def name(self) -> str:
        return self.full_name or self.address


@dataclass(frozen=True)
class SignInResult:
    kind: str  # ok | rejected | locked | must-change | disabled
    token: str = ""
    until: datetime | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Sign-in, session lookup and sign-out. Blocking: call from a worker thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        password_cfg: PasswordSection,
        limits: PageLimits,
        cfg: WorkspaceSection,
    ) -> None:
        self._sessions = sessions
        self._password_cfg = password_cfg
        self._limits = limits
        self._cfg = cfg

    def sign_in(self, address: str, password: str, client: str) -> SignInResult:
        address = address.strip().lower()[:320]
        with self._sessions() as session:
            until = self._limits.locked_until(session, address, client)
            if until is not None:
                return SignInResult("locked", until=until)
            mailbox = self._mailbox(session, address)
            if mailbox is None or not mailbox.password_hash:
                verify_password(_dummy_hash(self._password_cfg), password)
                return self._failed(session, address, client)
            if not verify_password(mailbox.password_hash, password):
                return self._failed(session, address, client)
            if not mailbox.enabled:
                return SignInResult("disabled")
            if mailbox.must_change:
                # One-time password: it is replaced on the password page first.
                return SignInResult("must-change")
            self._limits.record_success(session, address, client)
            token = secrets.token_urlsafe(32)
            now = utcnow()
            session.add(
                WebSession(
                    token_sha256=_digest(token),
                    address=mailbox.address,
                    csrf=secrets.token_urlsafe(24),
                    client=client[:64],
                    created_at=now,
                    last_seen_at=now,
                )
            )
            audit.record(
                session, mailbox.address, "workspace.sign-in", mailbox.address, {"client": client}
            )
            session.commit()
        log.info("workspace: %s signed in from %s", address, client)
        return SignInResult("ok", token=token)

    @staticmethod
    def _mailbox(session: Session, address: str) -> Mailbox | None:
        try:
            mailbox = get_mailbox(session, address)
        except NotFoundError:
            return None
        return None if mailbox.removed else mailbox

    def _failed(self, session: Session, address: str, client: str) -> SignInResult:
        for attempt in range(3):
            try:
                until = self._limits.record_failure(session, address, client)
                audit.record(
                    session,
                    address or "-",
                    "workspace.sign-in-refused",
                    address or "-",
                    {"client": client},
                )
                session.commit()
                break
            except IntegrityError:  # a concurrent attempt created the same row first
                session.rollback()
                if attempt == 2:
                    raise
        log.info("workspace: refused sign-in for %s from %s", address, client)
        return SignInResult("locked", until=until) if until else SignInResult("rejected")

    def resolve(self, token: str) -> Person | None:
        """The person behind a session cookie, or None (unknown, ended, idle, too old,
        or the mailbox was disabled since). Touches the session's last-seen time."""
        if not token or len(token) > 128:
            return None
        now = utcnow()
        with self._sessions() as session:
            row = session.get(WebSession, _digest(token))
            if row is None or row.ended_at is not None:
                return None
            idle = now - row.last_seen_at > timedelta(minutes=self._cfg.idle_minutes)
            old = now - row.created_at > timedelta(hours=self._cfg.max_hours)
            mailbox = self._mailbox(session, row.address)
            stale = (
                mailbox is not None
                and mailbox.password_changed_at is not None
                and mailbox.password_changed_at > row.created_at
            )
            if idle or old or stale or mailbox is None or not mailbox.enabled:
                row.ended_at = now
                session.commit()
                return None
            if now - row.last_seen_at > timedelta(seconds=30):  # not a write per request
                row.last_seen_at = now
                session.commit()
            return Person(
                address=mailbox.address,
                full_name=mailbox.full_name,
                role=mailbox.role,
                unit=mailbox.unit,
                csrf=row.csrf,
                register_ids=_registers_of(session, mailbox),
                agency_id=mailbox.agency_id,
            )

    def sign_out(self, token: str, person: Person) -> None:
        with self._sessions() as session:
            session.execute(
                update(WebSession)
                .where(WebSession.token_sha256 == _digest(token), WebSession.ended_at.is_(None))
                .values(ended_at=utcnow())
            )
            audit.record(session, person.address, "workspace.sign-out", person.address)
            session.commit()

    def end_all(self, address: str) -> int:
        """End every open session of ``address`` (a disabled mailbox, a reset password)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(WebSession).where(
                    WebSession.address == address, WebSession.ended_at.is_(None)
                )
            ).all()
            for row in rows:
                row.ended_at = utcnow()
            session.commit()
            return len(rows)


def _registers_of(session: Session, mailbox: Mailbox) -> tuple[int, ...]:
    """Registers a person works in: their agency's, or their mail domain's when the
    mailbox belongs to no agency. Never another agency's."""
    if mailbox.agency_id is not None:
        where = Register.agency_id == mailbox.agency_id
    else:
        where = Register.domain == mailbox.address.rpartition("@")[2]
    return tuple(session.scalars(select(Register.id).where(where).order_by(Register.id)))


def csrf_ok(person: Person, submitted: str) -> bool:
    return bool(submitted) and hmac.compare_digest(person.csrf, submitted)
