"""Job functions used by the scheduler tests (real jobs under the JobContext contract)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from mailsvc.jobs.context import JobContext

EXECUTIONS: list[datetime] = []
_lock = threading.Lock()


async def counting_job(ctx: JobContext) -> str:
    """Records each execution's scheduled time; takes a moment, like real work."""
    with _lock:
        EXECUTIONS.append(ctx.now)
    await asyncio.sleep(0.05)
    return f"counted {ctx.now.isoformat()}"


async def failing_job(ctx: JobContext) -> str:
    raise RuntimeError("disk full")
