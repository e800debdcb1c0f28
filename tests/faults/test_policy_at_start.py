"""A mistake in a policy file is reported by `mailsvc serve` before anything starts: no
Dovecot, no clamd, no listener (an administrator reads the error at once, not after the
daemons have started and been stopped again)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailsvc.config import PACKAGED_POLICIES
from tests.e2e.conftest import prepare_home, seed
from tests.faults.conftest import LISTENERS, Serve, clamds, dovecot_masters


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("spam.yaml", "thresholds: [unclosed\n", "spam.yaml"),
        ("signature.yaml", "no_such_key: 1\n", "signature.yaml"),
        ("limits.yaml", "mime: {max_depth: many}\n", "limits.yaml"),
    ],
)
def test_a_policy_mistake_stops_serve_before_any_daemon_starts(
    service_home: Path, db_url: str, name: str, text: str, expected: str
) -> None:
    prepare_home(service_home, db_url)
    seed(db_url)
    shutil.copytree(PACKAGED_POLICIES, service_home / "policies")
    (service_home / "policies" / name).write_text(text, encoding="utf-8")
    serve = Serve(service_home, db_url)
    serve.private_files()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mailsvc", "serve", *(f"--{n}=127.0.0.1:0" for n in LISTENERS)],
            env=serve.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        serve.stop_all()
    assert done.returncode != 0
    assert expected in done.stderr + done.stdout, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "listening" not in done.stdout
    # Neither daemon was started: their generated configurations were never written.
    assert not (service_home / "dovecot" / "dovecot.conf").exists()
    assert not list(service_home.glob("clamav/*.conf"))
    assert dovecot_masters(service_home) == [] and clamds(service_home) == []
