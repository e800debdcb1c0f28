"""Runs the stages and turns their findings into one Verdict using the policy.

The stage order is one visible list (``Settings.pipeline.stages``, checked at
start-up). ``limits`` runs first, alone, because it guards the others against
hostile structure; the remaining stages run concurrently (they are independent:
each one only reads the message). The strictest action wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from mailsvc.errors import ConfigError
from mailsvc.interfaces import Stage
from mailsvc.message import InboundMessage
from mailsvc.policy.pipeline import OnError, OnFail, PipelinePolicy
from mailsvc.verdict import Action, Finding, Status, Verdict

log = logging.getLogger(__name__)

GATE_STAGES = ("limits",)
ORIGIN_STAGE = "authentication"


class ScorePolicy(Protocol):
    """Spam-type scoring over all findings (implemented by mailsvc.policy.spam)."""

    def score_for(self, finding: Finding) -> float: ...

    def action_for(self, total: float) -> str: ...  # "deliver" | "junk" | "reject"


class Analyser(Protocol):
    """The shared per-message analysis (mailsvc.documents.extract.TextExtractor)."""

    def cached(self, msg: InboundMessage) -> object | None: ...


class PipelineRunner:
    def __init__(
        self,
        stages: Sequence[Stage],
        policy: PipelinePolicy,
        scoring: ScorePolicy | None = None,
        analyser: Analyser | None = None,
    ) -> None:
        """``analyser``: the extractor whose one worker call per message the stages share;
        its analysis travels with the verdict (``Verdict.analysis``) to the recorders."""
        self.analyser = analyser
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"pipeline: duplicate stage names in {names}")
        self.stages = tuple(s for s in stages if policy.for_stage(s.name).enabled)
        self.policy = policy
        self.scoring = scoring

    async def run(self, msg: InboundMessage) -> Verdict:
        findings: list[Finding] = []
        gates = [s for s in self.stages if s.name in GATE_STAGES]
        rest = [s for s in self.stages if s.name not in GATE_STAGES]
        for stage in gates:
            findings.extend(await self._inspect(stage, msg))
        action, deciding = self._decide(findings)
        if action.severity < Action.TEMPFAIL.severity:
            results = await asyncio.gather(*(self._inspect(s, msg) for s in rest))
            for found in results:
                findings.extend(found)
            action, deciding = self._decide(findings)
        verdict = Verdict(
            queue_id=msg.queue_id,
            findings=tuple(findings),
            action=action,
            deciding=deciding,
            policy_version=self.policy.version,
            analysis=self.analyser.cached(msg) if self.analyser is not None else None,
        )
        log.info(
            "verdict %s action=%s%s stages=%s",
            msg.queue_id,
            action.value,
            f" reason={deciding.reason}" if deciding else "",
            ",".join(f"{f.stage}:{f.status.value}:{f.reason}" for f in findings),
        )
        return verdict

    async def _inspect(self, stage: Stage, msg: InboundMessage) -> tuple[Finding, ...]:
        try:
            return tuple(await stage.inspect(msg))
        except Exception as exc:  # boundary: a crashing stage fails closed
            log.exception("stage %s crashed on %s", stage.name, msg.queue_id)
            return (
                Finding(
                    stage=stage.name,
                    status=Status.ERROR,
                    reason=f"{stage.name}-crashed",
                    detail=f"{type(exc).__name__}: {exc}",
                ),
            )

    def _decide(self, findings: Sequence[Finding]) -> tuple[Action, Finding | None]:
        action, deciding = Action.DELIVER, None
        total = 0.0
        top_scorer: Finding | None = None
        for finding in findings:
            candidate = self._action_for(finding)
            if candidate.severity > action.severity:
                action, deciding = candidate, finding
            if self.scoring is not None:
                score = self.scoring.score_for(finding)
                total += score
                if score > 0 and (top_scorer is None or score > self.scoring.score_for(top_scorer)):
                    top_scorer = finding
        if self.scoring is not None and total > 0:
            scored = {"junk": Action.QUARANTINE, "reject": Action.REJECT}.get(
                self.scoring.action_for(total), Action.DELIVER
            )
            if scored.severity > action.severity:
                action = scored
                # A refusal whose biggest weight is an origin failure (e.g. DMARC p=reject) is
                # an origin refusal: the reply says "sender not authenticated", not "spam".
                if (
                    scored is Action.REJECT
                    and top_scorer is not None
                    and top_scorer.stage == ORIGIN_STAGE
                    and top_scorer.status is Status.FAIL
                ):
                    deciding = top_scorer
                    return action, deciding
                deciding = Finding(
                    stage="spam",
                    status=Status.FAIL,
                    reason="spam-score",
                    detail=f"total score {total:.1f}"
                    + (f", highest {top_scorer.reason}" if top_scorer else ""),
                    score=total,
                )
        return action, deciding

    def _action_for(self, finding: Finding) -> Action:
        stage_policy = self.policy.for_stage(finding.stage)
        if finding.status is Status.ERROR:
            return Action.TEMPFAIL if stage_policy.on_error is OnError.TEMPFAIL else Action.DELIVER
        if finding.status is Status.FAIL:
            on_fail = stage_policy.reasons.get(finding.reason, stage_policy.on_fail)
            return {
                OnFail.REJECT: Action.REJECT,
                OnFail.QUARANTINE: Action.QUARANTINE,
                OnFail.OBSERVE: Action.DELIVER,
            }[on_fail]
        return Action.DELIVER
