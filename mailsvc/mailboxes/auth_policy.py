"""Dovecot's authentication policy protocol, served from our lock-out rows.

IMAP logins go through Dovecot, which by itself knows nothing of the ``auth_failure``
rows that SMTP AUTH and the password page keep. With ``auth_policy_server_url``
Dovecot asks this server before every login (``command=allow``) and reports the
outcome after it (``command=report``), so one lock-out covers SMTP, IMAP and the
password page:

- ``allow``: ``{"status": -1, "msg": "..."}`` while the (account, client address)
  pair is locked out, else ``{"status": 0}``. Dovecot then refuses the login even with
  the right password, and its ``reason`` reaches the client.
- ``report`` (``"success": true|false``, ``"policy_reject": true|false``): a failure
  is recorded exactly as an SMTP AUTH failure is (and may start a lock-out); a success
  clears the pair's count; a login we refused ourselves is not counted again.

Dovecot skips the policy for master-user logins (the service's own sessions).

The server listens on loopback only, on a port chosen at start, and answers only
requests carrying the random key written into dovecot.conf (0600): no other local
process can lock an account out or read lock-out state. It runs in its own thread and
event loop: a login must not wait for the SMTP side's loop (and a stalled loop must not
refuse every IMAP login). Database work runs off that loop too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.session import reading
from mailsvc.lockout import Lockout
from mailsvc.time import iso_local

log = logging.getLogger(__name__)

API_HEADER = "X-API-Key"
MAX_REQUEST_BYTES = 16 * 1024


@dataclass(frozen=True)
class AuthPolicyEndpoint:
    """What dovecot.conf needs to reach the server."""

    url: str
    api_key: str
    hash_nonce: str

    def dovecot_settings(self) -> dict[str, str]:
        return {
            "auth_policy_server_url": self.url,
            "auth_policy_server_api_header": f"{API_HEADER}:{self.api_key}",
            "auth_policy_hash_nonce": self.hash_nonce,
            "auth_policy_request_attributes": (
                "login=%{requested_username} remote=%{rip} protocol=%s"
            ),
            "auth_policy_check_before_auth": "yes",
            "auth_policy_check_after_auth": "no",
            "auth_policy_report_after_auth": "yes",
            # Our server lives in the process that supervises Dovecot: if it cannot
            # answer, refuse the login rather than skip the lock-out.
            "auth_policy_reject_on_fail": "yes",
            "auth_policy_server_timeout_msecs": "5000",
        }


class AuthPolicyServer:
    def __init__(self, sessions: sessionmaker[Session], lockout: Lockout) -> None:
        self._sessions = sessions
        self._lockout = lockout
        self._api_key = secrets.token_urlsafe(32)
        self._nonce = secrets.token_urlsafe(16)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.endpoint: AuthPolicyEndpoint | None = None

    async def start(self, host: str = "127.0.0.1") -> AuthPolicyEndpoint:
        """Start the server's thread and loop; return what dovecot.conf needs."""
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="auth-policy", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(host), loop)
        return await asyncio.wrap_future(future)

    async def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._cleanup(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
        loop.close()
        self._loop = self._thread = None

    async def _serve(self, host: str) -> AuthPolicyEndpoint:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.endpoint = AuthPolicyEndpoint(f"http://{host}:{port}/", self._api_key, self._nonce)
        log.info("auth policy server for Dovecot on %s:%d", host, port)
        return self.endpoint

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.headers.get(API_HEADER, "").strip()
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            return web.json_response({"status": -1, "msg": "forbidden"}, status=403)
        try:
            body = json.loads(await request.read())
        except (ValueError, web.HTTPException):
            return web.json_response({"status": -1, "msg": "bad request"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"status": -1, "msg": "bad request"}, status=400)
        account = str(body.get("login", "")).strip().lower()
        client = str(body.get("remote", "")).strip()
        command = request.query.get("command", "")
        try:
            if command == "allow":
                until = await asyncio.to_thread(self._locked_until, account, client)
                if until is None:
                    return web.json_response({"status": 0, "msg": ""})
                log.warning("IMAP login refused for %s from %s: locked out", account, client)
                return web.json_response(
                    {
                        "status": -1,
                        "msg": f"Too many failed logins, try again after {iso_local(until)}",
                    }
                )
            if command == "report":
                if body.get("policy_reject") is not True:
                    success = body.get("success") is True
                    await asyncio.to_thread(self._report, account, client, success)
                return web.json_response({"status": 0, "msg": ""})
        except Exception:  # boundary: Dovecot refuses the login when we cannot answer
            log.exception("auth policy %s for %s failed", command, account)
            return web.json_response({"status": -1, "msg": "internal error"}, status=500)
        return web.json_response({"status": -1, "msg": "unknown command"}, status=400)

    def _locked_until(self, account: str, client: str) -> datetime | None:
        with reading(self._sessions) as session:
            return self._lockout.locked_until(session, account, client)

    def _report(self, account: str, client: str, success: bool) -> None:
        if not account:
            return
        with self._sessions.begin() as session:
            if success:
                self._lockout.record_success(session, account, client)
                return
            until = self._lockout.record_failure(session, account, client)
        log.warning(
            "IMAP login failed for %s from %s%s",
            account,
            client,
            f"; locked out until {iso_local(until)}" if until else "",
        )
