"""The worker pool's processes import the worker-side code only, not the service.

Every process of the pool holds what it imports (a sum of RSS counts it per process), so
the functions the stages send to the pool live in modules that need neither SQLAlchemy,
Alembic, the database models, the directory, DNS nor SPF. Checked in a fresh interpreter
(this one has imported everything) and in a real forkserver worker, which also imports
the program's main module again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = (
    "sqlalchemy",
    "alembic",
    "spf",
    "prometheus_client",
    "mailsvc.db",
    "mailsvc.directory",
    "mailsvc.app",
    "mailsvc.adapters.dns",
    "mailsvc.pipeline.authentication",
    "mailsvc.register.recorder",
)

SCRIPT = textwrap.dedent(
    """
    import json, sys

    # every function the stages run in the pool, imported as unpickling a task does
    from mailsvc.documents.extract import analyse_message_bytes
    from mailsvc.documents.pool import PRELOAD, WorkerPool
    from mailsvc.notify.exchange import status_task
    from mailsvc.pipeline.classification import scan_markings
    from mailsvc.pipeline.dkim_verify import parse_signatures, verify_signatures
    from mailsvc.pipeline.limits import check_limits
    from mailsvc.pipeline.metadata import read_metadata
    from mailsvc.pipeline.spam import view_hits
    from mailsvc.register.attachments import attachments_task
    from mailsvc.signatures.engine import verify_in_worker
    from mailsvc.signatures.worker import verify_document

    CODE = "sorted(__import__('sys').modules)"

    if __name__ == "__main__":
        here = sorted(sys.modules)
        pool = WorkerPool(1)
        try:
            worker = pool.submit(eval, CODE).result(timeout=120)
        finally:
            pool.shutdown()
        print(json.dumps({"here": here, "worker": worker, "preload": list(PRELOAD)}))
    """
)


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_worker_side_code_does_not_import_the_service(tmp_path: Path) -> None:
    script = tmp_path / "worker_imports.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert _heavy(found["here"]) == []
    assert _heavy(found["worker"]) == []
    # what the fork server preloads is in the worker, and the worker-side modules are too
    assert {"mailsvc.pipeline.spam", "mailsvc.register.attachments"} <= set(found["worker"])
    assert set(found["preload"]) - {"__main__"} <= set(found["worker"])


def test_the_command_line_imports_a_command_when_it_is_run() -> None:
    """A pool worker runs the ``mailsvc`` script again: importing mailsvc.cli is light."""
    code = "import json, sys, mailsvc.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    assert "mailsvc.cli" in modules
    assert _heavy(modules) == []
    assert "mailsvc.cli.serve" not in modules
