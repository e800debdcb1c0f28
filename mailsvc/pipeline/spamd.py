"""SpamdStage: asks SpamAssassin's spamd, when one is configured, for its score.

The finding's score is spamd's score; ``policy/spam.py`` adds it to the message total
(so spamd and our own rules share one set of thresholds). spamd down is an error
finding: the runner answers 451 per ``pipeline.yaml`` (never accept unchecked).
"""

from __future__ import annotations

from mailsvc.adapters.spamd import SpamdClient, SpamdError
from mailsvc.message import InboundMessage
from mailsvc.verdict import Finding, Status

STAGE_NAME = "spamd"


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
        evidence = {
            "score": result.score,
            "threshold": result.threshold,
            "rules": list(result.rules[:50]),
        }
        return (
            Finding(
                stage=self.name,
                status=Status.FAIL if result.is_spam else Status.PASS,
                reason="spamd-spam" if result.is_spam else "spamd-ham",
                detail=f"spamd score {result.score} / {result.threshold}",
                score=result.score,
                evidence=evidence,
            ),
        )
