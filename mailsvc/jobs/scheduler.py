"""The scheduler (APScheduler 3, asyncio) and the jobs `serve` runs today.

Jobs are plain functions run in a thread; each is one unit of work with its own
boundary (a failing job is logged, the scheduler goes on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailsvc.signatures.crl import refresh_crls
from mailsvc.signatures.policy import SignaturePolicy

log = logging.getLogger(__name__)


def crl_refresh_job(policy: SignaturePolicy, home: Path) -> Callable[[], object]:
    def run() -> object:
        results = refresh_crls(policy.crl_sources, home / "crl", home=home)
        for result in results:
            log.info("crl refresh: %s", result)
        return results

    return run


def _guarded(name: str, func: Callable[[], object]) -> Callable[[], object]:
    async def run() -> None:
        try:
            await asyncio.to_thread(func)
        except Exception:  # boundary: one job's failure never stops the scheduler
            log.exception("job %s failed", name)

    return run


def build_scheduler(policy: SignaturePolicy, home: Path) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        _guarded("crl-refresh", crl_refresh_job(policy, home)),
        "interval",
        minutes=policy.crl_refresh_minutes,
        id="crl-refresh",
        name="crl-refresh",
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    return scheduler
