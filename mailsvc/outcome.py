"""What became of a checked message: the typed result of acceptance.

``check_and_act`` (mailsvc.smtp.handler) returns one of three values and nothing else
reads SMTP text: ``mailsvc.smtp.replies.for_outcome`` is the one place that turns an
outcome into a reply line, the external-mailbox poller and the followers (notices, alerts)
read the fields.

- ``Accepted``: stored (blob fsynced, rows committed) and handed to Dovecot, or queued for
  another server; ``duplicate`` when the same message had already been accepted.
- ``Deferred``: try later (a check could not run, Dovecot did not take it, disk full).
- ``Refused``: the verdict refuses it for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from mailsvc.verdict import Verdict

if TYPE_CHECKING:
    from mailsvc.db.models import MessageRecord


class DeferReason(str, Enum):
    CHECKS = "checks"  # a stage could not run (dependency down): the verdict tempfails
    DELIVERY = "delivery"  # stored, but Dovecot did not take it yet (repair delivers)
    STORAGE_FULL = "storage-full"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Entry:
    """One register entry a message made (incoming register)."""

    register: str  # register code
    status: str  # RegisterStatus value, e.g. "arrived", "registered"
    number: int | None = None  # the incoming number (số đến), when numbered
    number_text: str = ""  # "15/2026"


@dataclass(frozen=True)
class Accepted:
    queue_id: str  # the id the message is stored under (the first one, for a duplicate)
    duplicate: bool = False
    entries: tuple[Entry, ...] = ()
    # The rows of the local recipients made by this acceptance (empty for a duplicate).
    records: Sequence[MessageRecord] = field(default=(), compare=False, repr=False)

    @property
    def register_numbers(self) -> tuple[str, ...]:
        return tuple(e.number_text for e in self.entries if e.number is not None)


@dataclass(frozen=True)
class Deferred:
    reason: DeferReason
    detail: str = ""


@dataclass(frozen=True)
class Refused:
    verdict: Verdict


Outcome = Accepted | Deferred | Refused
