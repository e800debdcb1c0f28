"""SpamdStage: asks SpamAssassin's spamd, when one is configured, for its score.

The finding's score is spamd's score; ``policy/spam.py`` adds it to the message total
(so spamd and our own rules share one set of thresholds). spamd down is an error
finding: the runner answers 451 per ``pipeline.yaml`` (never accept unchecked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailsvc.adapters.spamd import SpamdClient, SpamdError
from mailsvc.message import InboundMessage
from mailsvc.verdict import Finding, Status

STAGE_NAME = "spamd"


@dataclass(frozen=True)
class SpamdScore:
    """Typed payload of the finding: spamd's score, its threshold and the rules it hit."""

    score: float
    threshold: float
    rules: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold, "rules": list(self.rules)}


class SpamdStage:
    name = STAGE_NAME
    description = "SpamAssassin's score from an external spamd"

    def __init__(self, client: SpamdClient) -> None:
        self._client = client

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        try:
            result = await self._client.check(msg.raw)
        except SpamdError as exc:
            return (
                Finding(
                    stage=self.name,
                    status=Status.ERROR,
                    reason="spamd-unavailable",
                    detail=str(exc),
                ),
            )
        return (
            Finding(
                stage=self.name,
                status=Status.FAIL if result.is_spam else Status.PASS,
                reason="spamd-spam" if result.is_spam else "spamd-ham",
                detail=f"spamd score {result.score} / {result.threshold}",
                score=result.score,
                payload=SpamdScore(result.score, result.threshold, tuple(result.rules[:50])),
            ),
        )
