"""AntivirusStage with a real clamd: message in, finding out."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import tests.hostile_mail as hm
from mailsvc.adapters.clamd import ClamdClient
from mailsvc.adapters.clamd_daemon import ClamdDaemon, ClamdLimits
from mailsvc.message import InboundMessage
from mailsvc.pipeline.antivirus import AntivirusStage, ScanResult
from mailsvc.verdict import Status
from tests.clamd_fixture import ClamdService, clamd_service  # noqa: F401


def message(raw: bytes) -> InboundMessage:
    return InboundMessage(
        queue_id="Q7",
        mail_from=hm.SENDER,
        rcpt_tos=(hm.RECIPIENT,),
        raw=raw,
        received_at=datetime.now(UTC),
        client_ip="192.0.2.20",
    )


CASES = {
    "clean": (hm.clean(), Status.PASS, "clean", None),
    "eicar-plain": (hm.eicar_plain(), Status.FAIL, "virus-found", "Eicar"),
    "eicar-zipped": (hm.eicar_zipped(), Status.FAIL, "virus-found", "Eicar"),
    "eicar-nested-message": (hm.eicar_nested(), Status.FAIL, "virus-found", "Eicar"),
    "eicar-in-body": (hm.eicar_in_body(), Status.FAIL, "virus-found", "Eicar"),
    "own-signature": (hm.marker_virus(), Status.FAIL, "virus-found", "Mailsvc.Test.Marker"),
}


@pytest.mark.parametrize(("raw", "status", "reason", "signature"), list(CASES.values()),
                         ids=list(CASES))  # fmt: skip
async def test_findings(
    clamd_service: ClamdService,  # noqa: F811
    raw: bytes,
    status: Status,
    reason: str,
    signature: str | None,
) -> None:
    (finding,) = await AntivirusStage(clamd_service.client()).inspect(message(raw))
    assert (finding.stage, finding.status, finding.reason) == ("antivirus", status, reason)
    assert isinstance(finding.payload, ScanResult)
    assert finding.payload.size == len(raw)
    if signature is None:
        assert finding.payload.signature == ""
    else:
        assert signature in finding.payload.signature


async def test_message_over_the_stream_limit(clamd_service: ClamdService) -> None:  # noqa: F811
    raw = hm.with_attachment(bytes(clamd_service.stream_max_bytes), "big.bin", "octet-stream")
    (finding,) = await AntivirusStage(clamd_service.client()).inspect(message(raw))
    assert (finding.status, finding.reason) == (Status.FAIL, "scan-size-exceeded")
    assert finding.payload == ScanResult(size=len(raw))


async def test_content_clamd_cannot_scan_completely_is_refused() -> None:
    """With AlertExceedsMax, an archive unpacking past clamd's MaxScanSize is a finding."""
    with tempfile.TemporaryDirectory(prefix="clamd-") as root:
        limits = ClamdLimits(stream_max_bytes=4 << 20, max_scan_bytes=1 << 20)
        daemon = ClamdDaemon(Path(root), limits=limits)
        await daemon.start()
        try:
            raw = hm.with_attachment(hm.zip_bytes({"big.bin": bytes(2 << 20)}), "big.zip")
            (finding,) = await AntivirusStage(daemon.client()).inspect(message(raw))
        finally:
            await daemon.stop()
    assert (finding.status, finding.reason) == (Status.FAIL, "scan-limits-exceeded")
    assert isinstance(finding.payload, ScanResult)
    assert finding.payload.signature.startswith("Heuristics.Limits.Exceeded")


async def test_clamd_down_is_an_error_never_a_pass() -> None:
    with tempfile.TemporaryDirectory(prefix="clamd-") as root:
        stage = AntivirusStage(ClamdClient(str(Path(root) / "absent.sock")))
        (finding,) = await stage.inspect(message(hm.eicar_plain()))
    assert (finding.status, finding.reason) == (Status.ERROR, "antivirus-unavailable")


async def test_clamd_slow_is_an_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        stage = AntivirusStage(ClamdClient(f"127.0.0.1:{port}", timeout=0.2))
        (finding,) = await stage.inspect(message(hm.clean()))
    assert (finding.status, finding.reason) == (Status.ERROR, "antivirus-unavailable")
    assert "no answer" in finding.detail


async def test_stopped_mid_test_then_recovers_without_a_new_stage() -> None:
    with tempfile.TemporaryDirectory(prefix="clamd-") as root:
        service = ClamdService.start_new(Path(root), stream_max_bytes=1 << 20)
        try:
            stage = AntivirusStage(service.client(timeout=5))
            first = await stage.inspect(message(hm.eicar_zipped()))
            service.stop()
            during = await stage.inspect(message(hm.eicar_zipped()))
            service.start()
            after = await stage.inspect(message(hm.eicar_zipped()))
        finally:
            service.close()
    assert [f[0].reason for f in (first, during, after)] == [
        "virus-found", "antivirus-unavailable", "virus-found",
    ]  # fmt: skip
