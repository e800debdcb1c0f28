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


class Gate:
    """Holds :func:`held_job` until the test releases it; says whether it was cut off."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cut_off = False


GATE = Gate()


async def held_job(ctx: JobContext) -> str:
    """Runs until ``GATE.release`` is set (a test replaces GATE before each use)."""
    gate = GATE
    gate.entered.set()
    try:
        await gate.release.wait()
    except asyncio.CancelledError:
        gate.cut_off = True
        raise
    return "released"


async def endless_job(ctx: JobContext) -> str:
    """Never returns: the node running it is killed in the middle."""
    await asyncio.Event().wait()
    return "unreachable"
