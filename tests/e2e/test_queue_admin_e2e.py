"""`mailsvc queue` against a running server: a submission for an agency whose server is
down waits in the queue; the admin lists, shows, holds, releases, retries and deletes it
(each change audited); /metrics and /healthz show the queue's depth and oldest age."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from click.testing import CliRunner
from sqlalchemy import select

from mailsvc.cli import main
from mailsvc.db.models import AuditEntry
from mailsvc.outbound.models import OutboundMessage
from tests.e2e.conftest import PASSWORD, RunningServer, wait_for
from tests.e2e.test_exchange_e2e import _free_port
from tests.e2e.test_smtp_core import make_message, send
from tests.e2e.test_submission_e2e import CLERK_B, OFFICIAL, _server
from tests.remote_sink import sink_tls
from tests.signatures.pki import make_pdf, session_pki, signed_pdf


def cli(server: RunningServer, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--home", str(server.home), *args], env={"MAILSVC_ACTOR": "cli:quantri"}
    )
    assert result.exit_code == 0, result.output
    return result.output


def row(server: RunningServer) -> OutboundMessage:
    with server.sessions() as session:
        return session.scalars(select(OutboundMessage)).one()


async def test_queue_commands_metrics_and_health(
    service_home: Path, db_url: str, tmp_path: Path
) -> None:
    _, cert = sink_tls(tmp_path)
    down = f"127.0.0.1:{_free_port()}"  # nothing listens there
    async with _server(service_home, db_url, cert, down) as server:
        msg = make_message(OFFICIAL, CLERK_B, subject="Công văn 12")
        pki = session_pki()
        pdf = signed_pdf(make_pdf("Công văn số 12/STTTT-VP"), pki.personal, pki.organisation)
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="12.pdf")
        refused = await asyncio.to_thread(
            send, server, msg, OFFICIAL, [CLERK_B], "submission", (OFFICIAL, PASSWORD)
        )
        assert refused == {}
        await wait_for(lambda: "cannot connect" in row(server).last_error)

        [listed] = json.loads(await asyncio.to_thread(cli, server, "queue", "list", "--json"))
        assert listed["state"] == "queued" and listed["recipient"] == CLERK_B
        assert listed["sender"] == OFFICIAL and listed["kind"] == "submission"
        assert "cannot connect" in listed["last_error"]
        shown = json.loads(
            await asyncio.to_thread(cli, server, "queue", "show", str(listed["id"]), "--json")
        )
        assert shown["headers"]["Subject"] == "Công văn 12"
        table = await asyncio.to_thread(cli, server, "queue", "list")
        assert "submission" in table and CLERK_B in table

        await asyncio.to_thread(cli, server, "queue", "hold", str(listed["id"]))
        held_attempts = row(server).attempts
        assert row(server).state == "held"
        # /metrics: depth (held mail counts: it waits too) and the oldest age, read at scrape.
        host, port = server.addr("metrics")
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            text = (await client.get("/metrics")).text
            assert "mailsvc_outbound_queue_depth 1.0" in text
            assert "mailsvc_outbound_oldest_age_seconds" in text
            health = (await client.get("/healthz")).json()
            assert health["outbound"]["held"] == 1 and health["checks"]["outbound"] == "ok"
        assert row(server).attempts == held_attempts  # held: not tried

        await asyncio.to_thread(cli, server, "queue", "release", str(listed["id"]))
        await wait_for(lambda: row(server).attempts > held_attempts)
        await asyncio.to_thread(cli, server, "queue", "retry", str(listed["id"]))
        out = await asyncio.to_thread(
            cli,
            server,
            "queue",
            "delete",
            str(listed["id"]),
            "--reason",
            "gửi bằng đường bưu chính",
        )
        assert f"delete: {listed['id']}" in out
        assert row(server).state == "deleted"
        assert json.loads(await asyncio.to_thread(cli, server, "queue", "list", "--json")) == []
        # Nothing queued: retrying everything is no error, and changes nothing.
        assert await asyncio.to_thread(cli, server, "queue", "retry", "--all") == (
            "retry: nothing queued\n"
        )
        both = CliRunner().invoke(
            main, ["--home", str(server.home), "queue", "retry", "1", "--all"]
        )
        assert both.exit_code == 2 and "give message ids or --all, not both" in both.output
        [line] = json.loads(await asyncio.to_thread(cli, server, "outgoing", "list", "--json"))[0][
            "deliveries"
        ]
        assert line["status"] == "failed" and "gửi bằng đường bưu chính" in line["note"]
        with server.sessions() as session:
            actions = [
                (e.action, e.actor)
                for e in session.scalars(
                    select(AuditEntry).where(AuditEntry.action.like("queue.%"))
                )
            ]
        assert actions == [
            ("queue.hold", "cli:quantri"),
            ("queue.release", "cli:quantri"),
            ("queue.retry", "cli:quantri"),
            ("queue.delete", "cli:quantri"),
        ]
