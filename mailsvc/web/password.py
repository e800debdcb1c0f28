"""The password page: a user replaces a one-time (or current) password.

Plain HTML form, no JavaScript. CSRF: a random token in a ``__Host-`` cookie, and in
the form its HMAC under a per-process secret. Failed attempts are limited per
(account, client address) with the SMTP lock-out (same table, same rows), and also
per client address and per account across all pairs, with back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.accounts import PasswordRejectedError, change_password
from mailsvc.config import PasswordSection
from mailsvc.db.base import utcnow
from mailsvc.errors import MailsvcError
from mailsvc.lockout import Lockout
from mailsvc.passwords import WeakPasswordError

log = logging.getLogger(__name__)

CSRF_COOKIE = "__Host-mailsvc-csrf"
ANY = "*"  # account or client address of the aggregate lock-out rows
MAX_FIELD = 1024


@dataclass(frozen=True)
class PageLimits:
    """Failed-attempt limits for the page. ``pair`` is the SMTP lock-out itself; the
    aggregates catch one address trying many accounts and many addresses trying one."""

    pair: Lockout
    per_client: Lockout
    per_account: Lockout

    @classmethod
    def from_pair(cls, pair: Lockout, aggregate_factor: int = 4) -> PageLimits:
        def scaled() -> Lockout:
            return Lockout(pair.threshold * aggregate_factor, pair.base_seconds, pair.max_seconds)

        return cls(pair, scaled(), scaled())

    def _keys(self, account: str, client: str) -> list[tuple[Lockout, str, str]]:
        return [
            (self.pair, account, client),
            (self.per_client, ANY, client),
            (self.per_account, account, ANY),
        ]

    def locked_until(self, session: Session, account: str, client: str) -> datetime | None:
        ends = [lock.locked_until(session, a, c) for lock, a, c in self._keys(account, client)]
        found = [e for e in ends if e is not None]
        return max(found) if found else None

    def record_failure(self, session: Session, account: str, client: str) -> datetime | None:
        ends = [lock.record_failure(session, a, c) for lock, a, c in self._keys(account, client)]
        found = [e for e in ends if e is not None]
        return max(found) if found else None

    def record_success(self, session: Session, account: str, client: str) -> None:
        self.pair.record_success(session, account, client)
        self.per_account.record_success(session, account, ANY)


@dataclass(frozen=True)
class Outcome:
    kind: str  # changed | rejected | expired | disabled | invalid | locked
    message: str = ""
    until: datetime | None = None


class PasswordPage:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        cfg: PasswordSection,
        limits: PageLimits,
        templates_dir: Path,
        registry: CollectorRegistry,
        csrf_secret: bytes | None = None,
    ) -> None:
        self._sessions = sessions
        self._cfg = cfg
        self._limits = limits
        self._secret = csrf_secret or secrets.token_bytes(32)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._template = env.get_template("password.html")
        self._attempts = Counter(
            "mailsvc_password_page_attempts",
            "Password page submissions by result",
            ["result"],
            registry=registry,
        )

    # -- CSRF

    def _form_token(self, cookie: str) -> str:
        return hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()

    def _csrf_ok(self, request: web.Request, submitted: str) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(self._form_token(cookie), submitted)

    # -- rendering

    def _render(
        self,
        request: web.Request,
        *,
        status: int = 200,
        address: str = "",
        error: str = "",
        error_en: str = "",
        done: bool = False,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        new_cookie = not cookie or len(cookie) > 128
        if new_cookie:
            cookie = secrets.token_urlsafe(32)
        body = self._template.render(
            action=request.path,
            csrf=self._form_token(cookie),
            address=address,
            error=error,
            error_en=error_en,
            done=done,
            min_length=self._cfg.min_length,
        )
        response = web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8", headers=headers
        )
        if new_cookie:
            response.set_cookie(
                CSRF_COOKIE, cookie, path="/", secure=True, httponly=True, samesite="Strict"
            )
        return response

    # -- handlers

    async def get(self, request: web.Request) -> web.Response:
        address = request.query.get("address", "")[:320]
        return self._render(request, address=address)

    async def post(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: form.get(k, "") for k in ("csrf", "address", "current", "new1", "new2")}
        values = {k: v if isinstance(v, str) else "" for k, v in fields.items()}
        address = values["address"].strip().lower()[:320]
        if not self._csrf_ok(request, values["csrf"]):
            self._attempts.labels("csrf").inc()
            return self._render(
                request,
                status=403,
                address=address,
                error="Phiên làm việc không hợp lệ hoặc đã hết hạn; hãy nhập lại.",
                error_en="Invalid or expired form session (CSRF check); please try again.",
            )
        if not address or not values["current"] or not values["new1"]:
            return self._render(
                request,
                status=400,
                address=address,
                error="Hãy nhập đủ địa chỉ, mật khẩu hiện tại và mật khẩu mới.",
                error_en="Fill in the address, the current password and the new password.",
            )
        if values["new1"] != values["new2"]:
            self._attempts.labels("mismatch").inc()
            return self._render(
                request,
                status=400,
                address=address,
                error="Hai lần nhập mật khẩu mới không khớp nhau.",
                error_en="The two new passwords differ.",
            )
        if any(len(v) > MAX_FIELD for v in values.values()):
            return self._render(
                request,
                status=400,
                address="",
                error="Dữ liệu quá dài.",
                error_en="Input too long.",
            )
        client = request.remote or "unknown"
        outcome = await asyncio.to_thread(
            self._change, address, values["current"], values["new1"], client
        )
        self._attempts.labels(outcome.kind).inc()
        return self._respond(request, address, outcome)

    def _respond(self, request: web.Request, address: str, outcome: Outcome) -> web.Response:
        if outcome.kind == "changed":
            return self._render(request, address=address, done=True)
        if outcome.kind == "locked":
            seconds = max(1, int(((outcome.until or utcnow()) - utcnow()).total_seconds()) + 1)
            return self._render(
                request,
                status=429,
                address=address,
                error=f"Nhập sai quá nhiều lần; hãy thử lại sau {seconds} giây.",
                error_en=f"Too many failed attempts; try again in {seconds} seconds.",
                headers={"Retry-After": str(seconds)},
            )
        texts = {
            "rejected": ("Sai địa chỉ thư hoặc mật khẩu.", "Wrong address or password."),
            "expired": (
                "Mật khẩu dùng một lần đã hết hạn; đề nghị quản trị cấp mật khẩu mới.",
                "The one-time password has expired; ask the administrator for a new one.",
            ),
            "disabled": (
                "Hộp thư đang bị khóa; liên hệ quản trị hệ thống.",
                "This mailbox is disabled; contact the administrator.",
            ),
        }
        if outcome.kind in texts:
            vi, en = texts[outcome.kind]
            return self._render(request, status=403, address=address, error=vi, error_en=en)
        return self._render(
            request,
            status=400,
            address=address,
            error="Mật khẩu mới chưa đạt yêu cầu.",
            error_en=f"The new password is not accepted: {outcome.message}.",
        )

    def _change(self, address: str, current: str, new: str, client: str) -> Outcome:
        """Blocking: runs in a worker thread with its own session."""
        with self._sessions() as session:
            until = self._limits.locked_until(session, address, client)
            if until is not None:
                return Outcome("locked", until=until)
            try:
                change_password(session, self._cfg, address, current, new, actor=address)
            except PasswordRejectedError as exc:
                session.rollback()
                if exc.reason != "wrong":
                    return Outcome(exc.reason, str(exc))
                until = self._record_failure(session, address, client)
                log.info("password page: rejected login for %s from %s", address, client)
                return Outcome("locked", until=until) if until else Outcome("rejected")
            except WeakPasswordError as exc:
                return Outcome("invalid", str(exc))
            except MailsvcError as exc:
                return Outcome("invalid", str(exc))
            self._limits.record_success(session, address, client)
            session.commit()
        log.info("password page: password changed for %s from %s", address, client)
        return Outcome("changed")

    def _record_failure(self, session: Session, address: str, client: str) -> datetime | None:
        for attempt in range(3):
            try:
                until = self._limits.record_failure(session, address, client)
                session.commit()
                return until
            except IntegrityError:  # a concurrent attempt created the same row first
                session.rollback()
                if attempt == 2:
                    raise
        return None


def page_context_example() -> dict[str, Any]:
    """Plain values that render the template (for the all-templates test)."""
    return {
        "action": "/password",
        "csrf": "0" * 64,
        "address": "annv.stttt@example.vn",
        "error": "",
        "error_en": "",
        "done": False,
        "min_length": 12,
    }
