"""AntivirusStage: the whole raw message through the virus scanner (clamd).

clamd unpacks MIME parts, nested message/rfc822 parts and archives itself, so the
stage sends the message exactly as received. It observes and never acts:

- clean: ``pass`` / ``clean``
- a signature matched: ``fail`` / ``virus-found``; the payload (``ScanResult``) names it
- clamd stopped scanning at one of its limits (``Heuristics.Limits.Exceeded.*``, with
  ``AlertExceedsMax yes``): ``fail`` / ``scan-limits-exceeded`` — content that could not
  be scanned completely is not passed
- the message is larger than the scan stream limit: ``fail`` / ``scan-size-exceeded``
  (retrying would not help)
- clamd unreachable, slow or erroring: ``error`` / ``antivirus-unavailable`` (the runner
  answers 451 4.7.0; unscanned mail is never passed)

What a signed or compressed CMS part encloses (opaque S/MIME, ``x.pdf.p7m``) is DER in
the message as sent, which clamd does not open while every mail client does: with an
``extractor`` (the shared per-message analysis), each such content that the worker
unwrapped (``ExtractedText.enclosed``) is scanned too, as a stream of its own. When the
analysis fails the classification stage fails closed on it, so nothing passes unscanned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from mailsvc.adapters.clamd import ClamdSizeLimitError
from mailsvc.documents.extract import ExtractionError, TextExtractor
from mailsvc.errors import DependencyError
from mailsvc.interfaces import VirusScanner
from mailsvc.message import InboundMessage
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

LIMITS_PREFIX = "Heuristics.Limits.Exceeded"


@dataclass(frozen=True)
class ScanResult:
    """Typed payload of the stage's findings: what clamd saw of the message."""

    size: int  # bytes sent to clamd (the whole message)
    signature: str = ""  # the matching signature's name ("" when none matched)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "signature": self.signature}


class AntivirusStage:
    name = "antivirus"
    description = "Scans the whole message with ClamAV (clamd); viruses are refused"

    def __init__(self, scanner: VirusScanner, extractor: TextExtractor | None = None) -> None:
        self._scanner = scanner
        self._extractor = extractor

    async def _scan(self, msg: InboundMessage) -> str | None:
        """The first signature clamd matches in the message, then in each content its CMS
        parts enclose; None when all are clean."""
        signature = await self._scanner.scan(msg.raw)
        if signature is not None or self._extractor is None:
            return signature
        try:
            enclosed = (await self._extractor.analyse(msg)).text.enclosed
        except ExtractionError:
            return None  # the classification stage reports it and fails closed
        for content in enclosed:
            signature = await self._scanner.scan(content)
            if signature is not None:
                return signature
        return None

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        started = time.perf_counter()
        try:
            signature = await self._scan(msg)
        except ClamdSizeLimitError as exc:
            return (
                Finding(
                    stage=self.name,
                    status=Status.FAIL,
                    reason="scan-size-exceeded",
                    detail=str(exc),
                    payload=ScanResult(len(msg.raw)),
                ),
            )
        except DependencyError as exc:
            log.warning("antivirus unavailable for %s: %s", msg.queue_id, exc)
            return (
                Finding(
                    stage=self.name,
                    status=Status.ERROR,
                    reason="antivirus-unavailable",
                    detail=str(exc),
                ),
            )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if signature is None:
            return (
                Finding(
                    stage=self.name,
                    status=Status.PASS,
                    reason="clean",
                    detail=f"no signature matched ({len(msg.raw)} bytes, {elapsed_ms:.1f} ms)",
                    payload=ScanResult(len(msg.raw)),
                ),
            )
        reason = "scan-limits-exceeded" if signature.startswith(LIMITS_PREFIX) else "virus-found"
        log.warning(
            "antivirus %s: %s from %s [%s] sha256=%s",
            msg.queue_id,
            signature,
            msg.mail_from or "<>",
            msg.client_ip,
            msg.sha256,
        )
        return (
            Finding(
                stage=self.name,
                status=Status.FAIL,
                reason=reason,
                detail=f"clamd: {signature} ({elapsed_ms:.1f} ms)",
                payload=ScanResult(len(msg.raw), signature),
            ),
        )
