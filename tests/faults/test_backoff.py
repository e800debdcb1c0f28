"""Supervision that backs off: a Dovecot whose configuration cannot start is retried
0.2 s, 0.4 s, 0.8 s ... (not every 0.2 s), its reason is logged once, /healthz says
degraded while it is down, the administrators are alerted after N failures, and the
count resets only after it has stayed up."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mailsvc.config import PasswordSection
from mailsvc.db.models import Mailbox
from mailsvc.outbound.models import OutboundMessage
from mailsvc.passwords import hash_password
from tests.e2e.conftest import PASSWORD, prepare_home, running_server, seed, wait_for
from tests.faults.conftest import clerk, set_server_keys

ADMIN = "quantri@sotttt.example.vn"


async def health(server_addr: tuple[str, int]) -> dict[str, object]:
    async with httpx.AsyncClient(verify=False, timeout=30) as client:
        reply = await client.get(f"http://{server_addr[0]}:{server_addr[1]}/healthz")
    return reply.json()  # type: ignore[no-any-return]


async def test_dovecot_that_cannot_start_backs_off_alerts_and_recovers(
    service_home: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prepare_home(service_home, db_url)
    set_server_keys(service_home, restart_alert_after=3, restart_stable_seconds=2)
    admin = Mailbox(
        address=ADMIN,
        role="admin",
        password_hash=hash_password(PASSWORD, PasswordSection()),
        must_change=False,
    )
    seed(db_url, clerk(), admin)
    caplog.set_level(logging.INFO, logger="mailsvc.supervisor")
    async with running_server(service_home) as server:
        dovecot = server.app.dovecot
        supervisor = dovecot.supervisor
        assert supervisor is not None and supervisor.state == "up"
        assert (await health(server.addr("metrics")))["status"] == "ok"

        # An operator's typo in the generated file, then Dovecot dies: every restart
        # fails at once with the same reason.
        conf = dovecot.config_path
        good = conf.read_text()
        conf.write_text(good + "\nthis_is_not_a_setting = yes\n")
        killed_at = time.monotonic()
        supervisor.kill_for_test()
        await wait_for(lambda: supervisor.failures >= 4, timeout=30)
        elapsed = time.monotonic() - killed_at

        # Back-off: waits of 0.2 + 0.4 + 0.8 s before the 4th failure (the old code
        # restarted every 0.2 s: 49 times in 10 s).
        assert elapsed >= 1.4
        assert supervisor.next_backoff >= 1.6
        assert supervisor.state == "down"
        assert "this_is_not_a_setting" in supervisor.reason
        failed = [r.getMessage() for r in caplog.records if "dovecot failed" in r.getMessage()]
        # Logged once per change: the kill, then the configuration error once (not 3 times).
        assert len(failed) == 2, failed
        assert "status -9" in failed[0] and "Unknown setting: this_is_not_a_setting" in failed[1]

        report = await health(server.addr("metrics"))
        assert report["status"] == "degraded"
        checks = report["checks"]
        assert isinstance(checks, dict)
        assert checks["dovecot"].startswith("down: ")
        assert "this_is_not_a_setting" in checks["dovecot"]

        # One alert to the administrators, queued (it reaches the admin's mailbox when
        # Dovecot is back).
        def alerts() -> list[str]:
            with server.sessions() as session:
                return list(
                    session.scalars(
                        select(OutboundMessage.recipient).where(
                            OutboundMessage.kind == "alert-daemon"
                        )
                    ).all()
                )

        await wait_for(lambda: alerts() == [ADMIN], timeout=10)

        # The configuration is fixed: the next attempt starts it, health is ok again,
        # and only after it has stayed up for restart_stable_seconds is the count reset.
        conf.write_text(good)
        await wait_for(lambda: supervisor.state == "up", timeout=40)
        assert supervisor.failures >= 4
        assert (await health(server.addr("metrics")))["status"] == "ok"
        await wait_for(lambda: supervisor.failures == 0, timeout=10)
        assert supervisor.reason == ""
        assert alerts() == [ADMIN]  # still one alert
