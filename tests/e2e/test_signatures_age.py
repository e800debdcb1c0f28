"""Virus signatures that go stale are noticed: the clamav-update job runs freshclam (here
against an unreachable private mirror, so it fails and says why), then measures the age of
what clamd loaded; too old means a warning, /healthz "stale", the metric, and one mail a day
to the admins."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy

import httpx
import pytest
from sqlalchemy import update

from mailsvc.adapters.freshclam import render_freshclam_config, signature_time
from mailsvc.db.models import Mailbox
from mailsvc.errors import MailsvcError
from mailsvc.jobs.context import JobContext
from mailsvc.jobs.maintenance import clamav_update_job
from tests.e2e.conftest import DOMAIN, RunningServer, wait_for
from tests.e2e.test_smtp_core import fetch_inbox


def test_signature_time_from_clamd_version_or_files(tmp_path: os.PathLike[str]) -> None:
    built = signature_time("ClamAV 1.4.6/27456/Sat Dec  5 08:34:00 2026", None)
    assert built is not None and built.replace(tzinfo=None) == datetime(2026, 12, 5, 8, 34)
    db = tmp_path / "db"  # type: ignore[operator]
    db.mkdir()
    assert signature_time("ClamAV 1.4.6", db) is None
    (db / "daily.cld").write_bytes(b"x")
    os.utime(db / "daily.cld", (time.time() - 86400, time.time() - 86400))
    age = datetime.now(UTC) - signature_time("ClamAV 1.4.6", db)  # type: ignore[operator]
    assert 0.99 < age.total_seconds() / 86400 < 1.01


async def test_stale_signatures_fail_the_update_alert_admins_and_show_in_healthz(
    server: RunningServer,
) -> None:
    admin = f"quantri@{DOMAIN}"
    server.add_mailbox(admin, role="admin")
    gone = f"cu.quantri@{DOMAIN}"  # a former administrator's mailbox, removed: not told
    server.add_mailbox(gone, role="admin")
    with server.sessions() as session:
        session.execute(update(Mailbox).where(Mailbox.address == gone).values(removed=True))
        session.commit()
    app = server.app
    settings = app.settings.model_copy(
        update={
            "clamav": app.settings.clamav.model_copy(
                update={
                    "update_mirror": "http://127.0.0.1:9",
                    "update_attempts": 1,  # freshclam waits 5 s before each retry
                    "max_signature_age_days": 3.0,
                }
            )
        }
    )
    conf = render_freshclam_config(settings)
    assert "PrivateMirror http://127.0.0.1:9" in conf and "NotifyClamd " in conf
    assert "MaxAttempts 1" in conf.splitlines()
    ten_days_ago = time.time() - 10 * 86400
    for path in (settings.home / "clamav" / "db").iterdir():
        os.utime(path, (ten_days_ago, ten_days_ago))

    ctx = JobContext(settings, app.sessions, app.mailer, datetime.now(UTC))
    with pytest.raises(MailsvcError) as failed:
        await clamav_update_job(ctx)
    summary = str(failed.value)
    assert summary.startswith("freshclam exited ")
    assert "signatures 10.0 days old (limit 3)" in summary and "mailed 1 admin(s)" in summary
    with pytest.raises(MailsvcError) as again:
        await clamav_update_job(ctx)
    assert "admins already told today" in str(again.value)
    await wait_for(lambda: len(fetch_inbox(server, admin)) > 0)  # the mailer sends it
    (raw,) = fetch_inbox(server, admin)
    mail = message_from_bytes(raw, policy=default_policy)
    assert mail["Subject"] == "Mẫu nhận diện mã độc đã cũ 10 ngày"

    host, port = server.addr("metrics")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        health = (await client.get("/healthz")).json()
        metrics = (await client.get("/metrics")).text
    assert health["status"] == "degraded"
    assert health["checks"]["clamav_signatures"] == "stale: 10.0 days old (limit 3)"
    assert 9.9 < health["signature_age_days"] < 10.1
    (line,) = [x for x in metrics.splitlines() if x.startswith("mailsvc_clamav_signature_age")]
    assert 9.9 * 86400 < float(line.split()[1]) < 10.1 * 86400
