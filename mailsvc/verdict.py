"""The only verdict types: what a stage observed (Finding) and what the runner decided (Verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar


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


P = TypeVar("P")


class Payload(Protocol):
    """What a stage observed, as a typed (frozen, picklable) object. Later steps read its
    fields; ``to_json`` is only for the record stored with the message."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Finding:
    """One observation by one stage.

    ``reason`` is a stable kebab-case code (``virus-found``, ``dkim-fail``) that
    policies, replies and stored records refer to. ``detail`` is for the log,
    never for the SMTP peer. ``auth_result`` is an Authentication-Results
    method entry such as ``dkim=pass header.d=example.vn``. ``payload`` carries the
    stage's typed result (a virus scan, a limit breach, a signature report, document
    metadata...): readers take it with ``isinstance`` or ``Verdict.payloads``, never by
    string keys.
    """

    stage: str
    status: Status
    reason: str
    detail: str = ""
    auth_result: str | None = None
    score: float = 0.0
    payload: Payload | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-able record of the finding, stored with the message. The payload's JSON
        form goes under ``evidence`` (the key records have always had); it is written
        for the record, and no step reads it back."""
        return {
            "stage": self.stage,
            "status": self.status.value,
            "reason": self.reason,
            "detail": self.detail,
            "score": self.score,
            "evidence": self.payload.to_json() if self.payload is not None else {},
        }


@dataclass(frozen=True)
class Verdict:
    """Every stage's findings and the final action, decided once by the runner."""

    queue_id: str
    findings: tuple[Finding, ...]
    action: Action
    deciding: Finding | None = None
    policy_version: str = ""
    # The worker's one reading of the message (mailsvc.documents.extract.Analysis: the
    # text, the attachments with their roles, a status report), when a stage asked for
    # it; recorders read it instead of parsing the message again. Never stored.
    analysis: Any = field(default=None, compare=False, repr=False)

    def by_stage(self, stage: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.stage == stage)

    def payloads(self, kind: type[P]) -> list[P]:
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
