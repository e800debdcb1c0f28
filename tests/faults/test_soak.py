"""The 2-minute soak in CI: scripts/soak drives a real serve (plain mail, signed
documents, IMAP checks, a job every minute) on the suite's database and must end with
every answer 250, every acknowledged message in the mailbox, no RSS growth over 10 % and
no fd growth."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak"


@pytest.mark.long(130)
def test_two_minute_soak_has_no_loss_and_no_growth(db_url: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(SOAK.parents[1]))
    # the suite's database: PostgreSQL in its pass (SQLite: the soak's own file, 0600)
    database = ["--database", db_url] if db_url.startswith("postgresql") else []
    result = subprocess.run(
        [sys.executable, str(SOAK), "--minutes", "2", "--interval", "20", "--warmup", "40",
         "--rate", "8", "--sessions", "4", "--document-pool", "3", "--check", *database],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    samples = re.findall(r"^\[\s*[\d.]+ min\] sent (\d+) .* queue: outbound (\d+), stored (\d+)$",
                         out, re.M)  # fmt: skip
    assert len(samples) >= 6, out[-2000:]
    assert int(samples[-1][0]) > 500  # ~8 messages/s for two minutes
    dialect = "postgresql" if database else "sqlite"
    assert re.search(rf"^soak: .*, database {dialect}$", out, re.M), out[:2000]
    assert re.search(r"^\s+\d+\s+[\d.]+\s+\d+  mailsvc serve$", out, re.M)  # RSS + fds rows
    assert re.search(r"^\s+\d+\s+[\d.]+\s+\d+  dovecot \(master\)$", out, re.M)
    assert re.search(r"^\s+\d+\s+[\d.]+\s+\d+  clamd \(master\)$", out, re.M)
    assert "OK: every answer 250, every acknowledged message delivered, no growth" in out
