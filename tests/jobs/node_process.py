"""A scheduler node in a process of its own: ``python -m tests.jobs.node_process HOME NODE``.

It runs :func:`tests.jobs.sample_jobs.endless_job` at start (a node job, so its claim is
``endless@NODE``) and never stops by itself: a test kills it (SIGKILL) in the middle of
the run, as a crashed or killed ``mailsvc serve`` would be.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mailsvc.config import load_settings
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.jobs.catalog import JobSpec, every
from mailsvc.jobs.scheduler import JobRunner, JobScheduler

ENDLESS = JobSpec(
    "endless", "tests.jobs.sample_jobs:endless_job", "never ends", lambda s: every(60), scope="node"
)


async def main(home: Path, node: str) -> None:
    settings = load_settings(home, environ={})
    engine = make_engine(settings.database_url)
    runner = JobRunner(settings, make_sessionmaker(engine), None, node=node, specs=(ENDLESS,))
    await JobScheduler(runner, settings.database_url).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
