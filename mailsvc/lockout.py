"""Failed-login lock-out per (account, client address) with exponential back-off.

Used by SMTP AUTH and the password page. Every failure is recorded in the
``auth_failure`` table, so lock-outs survive restarts and are visible to admins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.db.models import AuthFailure


class Lockout:
    def __init__(self, threshold: int, base_seconds: int, max_seconds: int) -> None:
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds

    def locked_until(self, session: Session, account: str, client_ip: str) -> datetime | None:
        row = self._row(session, account, client_ip)
        if row is None or row.locked_until is None:
            return None
        return row.locked_until if row.locked_until > utcnow() else None

    def record_failure(self, session: Session, account: str, client_ip: str) -> datetime | None:
        """Count a failure; return the lock-out end when this failure triggers one."""
        now = utcnow()
        row = self._row(session, account, client_ip)
        if row is None:
            row = AuthFailure(
                account=account.lower(),
                client_ip=client_ip,
                failures=0,
                lockouts=0,
                first_failed_at=now,
                last_failed_at=now,
            )
            session.add(row)
        row.failures += 1
        row.last_failed_at = now
        if row.failures >= self.threshold:
            seconds = min(self.base_seconds * (2**row.lockouts), self.max_seconds)
            row.locked_until = now + timedelta(seconds=seconds)
            row.lockouts += 1
            row.failures = 0
            return row.locked_until
        return None

    def record_success(self, session: Session, account: str, client_ip: str) -> None:
        row = self._row(session, account, client_ip)
        if row is not None:
            row.failures = 0
            row.locked_until = None

    @staticmethod
    def _row(session: Session, account: str, client_ip: str) -> AuthFailure | None:
        return session.scalars(
            select(AuthFailure).where(
                AuthFailure.account == account.lower(), AuthFailure.client_ip == client_ip
            )
        ).one_or_none()
