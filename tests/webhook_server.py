"""A loopback HTTP server that records the JSON bodies POSTed to it (an SMS gateway's
stand-in for alert webhooks). Runs in the test's event loop; ``status`` sets the answer.

    async with WebhookSink() as sink:
        settings.alerts.webhook_url = sink.url
        ...
        await wait_for(lambda: len(sink.received) == 1)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class WebhookSink:
    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        self.content_types.append(request.headers.get("Content-Type", ""))
        self.received.append(json.loads(await request.read()))
        return web.Response(status=self.status)

    async def __aenter__(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kinds(self) -> list[str]:
        return [str(body.get("kind")) for body in self.received]
