"""The scheduler runs the CRL refresh job at start and on its interval."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailsvc.jobs.scheduler import build_scheduler
from mailsvc.signatures.policy import load_signature_policy
from tests.e2e.conftest import wait_for
from tests.signatures.pki import session_pki

POLICY = Path(__file__).resolve().parents[2] / "policies" / "signature.yaml"


async def test_crl_refresh_job_runs_at_start(tmp_path: Path) -> None:
    pki = session_pki()
    source = tmp_path / "crl-src"
    source.mkdir()
    for crl in pki.crl_dir.glob("*.crl"):
        shutil.copy(crl, source / crl.name)
    names = sorted(p.name for p in source.iterdir())
    policy = load_signature_policy(POLICY).model_copy(
        update={"crl_sources": tuple(f"crl-src/{n}" for n in names)}
    )
    scheduler = build_scheduler(policy, tmp_path)
    scheduler.start()
    try:
        job = scheduler.get_job("crl-refresh")
        assert job is not None
        cache = tmp_path / "crl"
        await wait_for(lambda: cache.is_dir() and len(list(cache.iterdir())) >= len(names))
        assert job.next_run_time is not None
    finally:
        scheduler.shutdown(wait=False)
