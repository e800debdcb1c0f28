"""The only verdict types: what a stage observed (Finding) and what the runner decided (Verdict)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any


class Status(str, Enum):
    """What a stage observed about one aspect of a message."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"  # nothing to check (e.g. no signature, no attachment)
    ERROR = "error"  # the check could not be made (dependency down, timeout)


class Action(str, Enum):
    """What happens to the message. Ordered from mildest to strictest: a definite
    refusal outranks "try later", since retrying cannot change it."""

    DELIVER = "deliver"
    QUARANTINE = "quarantine"  # delivered to the Junk folder, never registered
    TEMPFAIL = "tempfail"  # 4xx at DATA: a dependency is down, try later
    REJECT = "reject"  # 5xx at DATA

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.DELIVER: 0, Action.QUARANTINE: 1, Action.TEMPFAIL: 2, Action.REJECT: 3}


def _frozen(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Finding:
    """One observation by one stage.

    ``reason`` is a stable kebab-case code (``virus-found``, ``dkim-fail``) that
    policies, replies and stored records refer to. ``detail`` is for the log,
    never for the SMTP peer. ``auth_result`` is an Authentication-Results
    method entry such as ``dkim=pass header.d=example.vn``. ``payload`` carries a
    typed result object for later steps (e.g. a signature report or extracted
    document metadata); it is never a bag of keys.
    """

    stage: str
    status: Status
    reason: str
    detail: str = ""
    auth_result: str | None = None
    score: float = 0.0
    payload: Any = None
    evidence: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _frozen(self.evidence))

    def summary(self) -> dict[str, Any]:
        """A JSON-able record of the finding, stored with the message."""
        return {
            "stage": self.stage,
            "status": self.status.value,
            "reason": self.reason,
            "detail": self.detail,
            "score": self.score,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class Verdict:
    """Every stage's findings and the final action, decided once by the runner."""

    queue_id: str
    findings: tuple[Finding, ...]
    action: Action
    deciding: Finding | None = None
    policy_version: str = ""

    def by_stage(self, stage: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.stage == stage)

    def payloads(self, kind: type[Any]) -> list[Any]:
        """Typed payloads of a given class, in stage order."""
        return [f.payload for f in self.findings if isinstance(f.payload, kind)]

    def summary(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "action": self.action.value,
            "deciding": self.deciding.reason if self.deciding else None,
            "policy_version": self.policy_version,
            "findings": [f.summary() for f in self.findings],
        }
