"""ClassificationStage: classified content (Mật, Tối mật, Tuyệt mật, extras) never travels here.

Looks for markings (``mailsvc.documents.markings``) in the subject, the bodies, every
attachment's text and file name, archives, forwarded mail and document properties. One
finding per message:

Every finding's payload is a :class:`ClassificationResult`.

- ``fail`` / ``classified-content``: a marking was found. The payload's ``deciding`` match
  names the rule, the level, the source and where (``attachment 2 > member 1``), the part's
  SHA-256 and line; it never holds the text itself.
- ``fail`` / ``unreadable-content``: a part could not be read and the policy says refuse.
- ``error`` / ``extraction-failed``: extraction timed out, crashed, or a part could not be
  read and the policy says error. The runner tempfails (fail closed).
- ``pass`` / ``no-marking``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from mailsvc.documents.extract import (
    ExtractedText,
    ExtractionError,
    ExtractionFailure,
    MessageView,
    TextExtractor,
)
from mailsvc.documents.markings import MarkingDetector, MarkingMatch
from mailsvc.message import InboundMessage
from mailsvc.policy.classification import ClassificationPolicy, Unreadable
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

NAME = "classification"


@dataclass(frozen=True)
class ClassificationResult:
    """Typed payload of the finding: every match (no content) and the deciding one; the
    parts that could not be read when they decide; how many parts were read."""

    matches: tuple[MarkingMatch, ...]
    deciding: MarkingMatch | None
    policy_version: str
    message_sha256: str
    unreadable: tuple[ExtractionFailure, ...] = ()
    parts: int = 0

    @property
    def kinds(self) -> list[str]:
        """The kinds of the unreadable parts (corrupt, encrypted, timeout...), sorted."""
        return sorted({f.kind for f in self.unreadable})

    def to_json(self) -> dict[str, Any]:
        if self.deciding is not None:
            return self.deciding.to_dict() | {"matches": len(self.matches)}
        if self.unreadable:
            return {
                "kinds": self.kinds,
                "where": [f.location for f in self.unreadable[:10]],
                "part_sha256": [f.sha256 for f in self.unreadable[:10]],
                "message_sha256": self.message_sha256,
            }
        return {"parts": self.parts}

    @property
    def level(self) -> str | None:
        return self.deciding.category if self.deciding else None

    @property
    def title(self) -> str | None:
        """Vietnamese name of the level for notices: "Tối mật"."""
        return self.deciding.title if self.deciding else None


def scan_markings(view: MessageView, detector: MarkingDetector) -> list[MarkingMatch]:
    """The marking scan as an analysis task (in the worker, on the extracted text)."""
    return detector.scan(view.text)


class ClassificationStage:
    name = NAME
    description = "Refuses documents marked Mật, Tối mật, Tuyệt mật (and configured extras)"

    def __init__(
        self,
        policy: ClassificationPolicy,
        extractor: TextExtractor,
        executor: Executor | None = None,
    ) -> None:
        """``executor`` runs the marking scan of large texts (None: the loop's default pool).

        The extraction itself runs in the extractor's own executor (a process pool)."""
        self.policy = policy
        self.extractor = extractor
        self.executor = executor
        self.detector = MarkingDetector(policy)
        # the scan runs in the extractor's worker call, right after the extraction
        extractor.add_task(self.name, scan_markings, self.detector)

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        try:
            analysis = await self.extractor.analyse(msg)
            text = analysis.text
            scanned: list[MarkingMatch] | None = analysis.result(self.name)
        except ExtractionError as exc:
            return (
                Finding(
                    stage=self.name,
                    status=Status.ERROR,
                    reason="extraction-failed",
                    detail=str(exc),
                    payload=ClassificationResult(
                        matches=(),
                        deciding=None,
                        policy_version=self.policy.version,
                        message_sha256=msg.sha256,
                        unreadable=(
                            ExtractionFailure("(message)", "timeout", "", msg.sha256, str(exc)),
                        ),
                    ),
                ),
            )
        matches = scanned if scanned is not None else await self._scan(text)
        return (self._decide(text, matches),)

    async def _scan(self, text: ExtractedText) -> list[MarkingMatch]:
        size = sum(len(p.text) for p in text.parts)
        if size < 200_000:
            return self.detector.scan(text)
        # large texts: keep the event loop free
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.detector.scan, text)

    def _decide(self, text: ExtractedText, matches: list[MarkingMatch]) -> Finding:
        deciding = self.detector.strongest(matches)
        result = ClassificationResult(
            matches=tuple(matches),
            deciding=deciding,
            policy_version=self.policy.version,
            message_sha256=text.message_sha256,
            parts=len(text.parts),
        )
        if deciding is not None:
            return Finding(
                stage=self.name,
                status=Status.FAIL,
                reason="classified-content",
                detail=(
                    f"{deciding.category} marking ({deciding.rule}) in {deciding.source}"
                    f" at {deciding.location}; {len(matches)} match(es)"
                ),
                payload=result,
            )
        refuse = [
            f for f in text.failures if self.policy.unreadable.for_kind(f.kind) is Unreadable.REFUSE
        ]
        error = [
            f for f in text.failures if self.policy.unreadable.for_kind(f.kind) is Unreadable.ERROR
        ]
        skipped = [
            f
            for f in text.skipped
            if self.policy.unreadable.for_kind(f.kind) is not Unreadable.IGNORE
        ]
        for failure in skipped:
            if self.policy.unreadable.for_kind(failure.kind) is Unreadable.REFUSE:
                refuse.append(failure)
            else:
                error.append(failure)
        if error:
            return Finding(
                stage=self.name,
                status=Status.ERROR,
                reason="extraction-failed",
                detail="; ".join(f"{f.location}: {f.kind} ({f.detail})" for f in error[:5]),
                payload=replace(result, unreadable=tuple(error)),
            )
        if refuse:
            return Finding(
                stage=self.name,
                status=Status.FAIL,
                reason="unreadable-content",
                detail="; ".join(f"{f.location}: {f.kind} ({f.detail})" for f in refuse[:5]),
                payload=replace(result, unreadable=tuple(refuse)),
            )
        return Finding(
            stage=self.name,
            status=Status.PASS,
            reason="no-marking",
            detail=f"{len(text.parts)} part(s) read in {text.elapsed_ms:.1f} ms",
            payload=result,
        )
