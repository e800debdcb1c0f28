"""The HTTPS application on the ``http`` listener: /healthz, /metrics, /password and the
workspace (/w/)."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import PasswordSection
from mailsvc.lockout import Lockout
from mailsvc.web.password import PageLimits, PasswordPage
from mailsvc.web.workspace.pages import Workspace

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[Mapping[str, Any]]]
"""Returns e.g. {"status": "ok", "dovecot": "ok", "clamd": "degraded"}; HTTP 200 when
``status`` is ``ok`` or ``degraded``, 503 otherwise."""

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}


@web.middleware
async def _security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def make_app(
    *,
    sessions: sessionmaker[Session],
    password_cfg: PasswordSection,
    lockout: Lockout,
    health: HealthCheck,
    registry: CollectorRegistry,
    templates_dir: Path | None = None,
    csrf_secret: bytes | None = None,
    workspace: Workspace | None = None,
) -> web.Application:
    """Build the application. ``lockout`` is the SMTP AUTH lock-out (shared rows);
    ``registry`` is where /metrics reads from (the page adds its own counter to it)."""
    page = PasswordPage(
        sessions,
        password_cfg,
        PageLimits.from_pair(lockout),
        templates_dir or DEFAULT_TEMPLATES,
        registry,
        csrf_secret,
    )

    async def healthz(_request: web.Request) -> web.Response:
        try:
            result = dict(await health())
        except Exception as exc:  # boundary: a broken check is itself a health result
            log.exception("health check failed")
            result = {"status": "error", "error": type(exc).__name__}
        status = 200 if result.get("status") in ("ok", "degraded") else 503
        return web.Response(
            text=json.dumps(result, ensure_ascii=False, default=str),
            status=status,
            content_type="application/json",
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def root(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/w/" if workspace is not None else "/password")

    app = web.Application(middlewares=[_security_headers], client_max_size=64 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/password", page.get)
    app.router.add_post("/password", page.post)
    app.router.add_get("/", root)
    if workspace is not None:
        workspace.routes(app)
    return app


@dataclass
class HttpListener:
    runner: web.AppRunner
    address: tuple[str, int]

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_http(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> HttpListener:
    """Listen (port 0 picks a free port); ``ssl_context`` None only for tests of plain HTTP."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockname = runner.addresses[0]
    return HttpListener(runner, (str(sockname[0]), int(sockname[1])))
