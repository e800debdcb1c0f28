"""SpamdStage against Debian's real spamd (SpamAssassin with its shipped rules)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest

from mailsvc.adapters.spamd import SpamdClient
from mailsvc.message import InboundMessage
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.pipeline.spamd import SpamdScore, SpamdStage
from mailsvc.policy.pipeline import load_pipeline_policy
from mailsvc.policy.spam import load_spam_policy
from mailsvc.verdict import Action, Status
from tests.ports import unused_port

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _free_port() -> int:
    return unused_port()  # not an ephemeral port: see tests/ports.py


@pytest.fixture(scope="module")
def spamd() -> Iterator[str]:
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mailsvc-spamd-"))
    proc = subprocess.Popen(
        [
            "spamd",
            "-L",
            f"--listen=127.0.0.1:{port}",
            "--nouser-config",
            "-x",
            f"--pidfile={workdir / 'spamd.pid'}",
            "--max-children=2",
            "-s",
            "stderr",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "spamd.log").open("wb"),
    )
    deadline = time.monotonic() + 90
    while True:  # wait for the port, not a fixed time
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError((workdir / "spamd.log").read_text()) from None
            try:  # wait a moment on the process itself: returns at once if spamd died
                proc.wait(timeout=0.1)
                raise AssertionError((workdir / "spamd.log").read_text())
            except subprocess.TimeoutExpired:
                pass
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _message(body: str) -> InboundMessage:
    msg = EmailMessage()
    msg["From"] = "cv@sender.example.vn"
    msg["To"] = "vanthu@sotttt.example.vn"
    msg["Subject"] = "Báo cáo tháng 11"
    msg["Message-ID"] = "<spamd-test@sender.example.vn>"
    msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
    msg.set_content(body)
    return InboundMessage(
        queue_id="SPAMD1",
        mail_from="cv@sender.example.vn",
        rcpt_tos=("vanthu@sotttt.example.vn",),
        raw=msg.as_bytes(policy=SMTP_POLICY),
        received_at=datetime.now(UTC),
        client_ip="127.0.0.1",
    )


async def test_gtube_is_spam_and_the_runner_refuses_it(spamd: str) -> None:
    stage = SpamdStage(SpamdClient(spamd))
    (finding,) = await stage.inspect(_message(f"Nội dung.\n{GTUBE}\n"))
    assert finding.status is Status.FAIL and finding.reason == "spamd-spam"
    assert isinstance(finding.payload, SpamdScore)
    assert finding.score >= 1000 and "GTUBE" in finding.payload.rules
    runner = PipelineRunner(
        [stage],
        load_pipeline_policy(POLICIES / "pipeline.yaml"),
        scoring=load_spam_policy(POLICIES / "spam.yaml"),
    )
    verdict = await runner.run(_message(f"{GTUBE}\n"))
    assert verdict.action is Action.REJECT and verdict.deciding is not None
    assert verdict.deciding.reason == "spam-score"


async def test_ordinary_mail_is_ham(spamd: str) -> None:
    (finding,) = await SpamdStage(SpamdClient(spamd)).inspect(
        _message("Kính gửi Văn thư,\nXin gửi báo cáo tháng 11.\nTrân trọng.\n")
    )
    assert finding.status is Status.PASS and finding.reason == "spamd-ham"
    assert finding.score < 5


async def test_spamd_down_is_an_error_and_the_runner_tempfails() -> None:
    stage = SpamdStage(SpamdClient(f"127.0.0.1:{_free_port()}", timeout=5))
    runner = PipelineRunner(
        [stage],
        load_pipeline_policy(POLICIES / "pipeline.yaml"),
        scoring=load_spam_policy(POLICIES / "spam.yaml"),
    )
    verdict = await runner.run(_message("Kính gửi.\n"))
    (finding,) = verdict.findings
    assert finding.status is Status.ERROR and finding.reason == "spamd-unavailable"
    assert verdict.action is Action.TEMPFAIL
