"""Document statuses (trạng thái), their labels and the transition table.

Stable ASCII codes are stored and printed in JSON; Vietnamese labels are for display.
``exchange_code`` is the matching status code of the national exchange's status
messages (01 arrived, 02 refused, 03 registered, 04 assigned, 05 in progress,
06 done, 13 recall requested, 15 recall done); ``deleted`` has none. A recall request
(13, from the sender) waits for the clerk: ``recalled`` (15) or back to the status it
had (refused recall, 16; ``workflow.refuse_recall``).
"""

from __future__ import annotations

import unicodedata
from enum import Enum

from mailsvc.errors import MailsvcError


class DocumentStatus(str, Enum):
    ARRIVED = "arrived"  # đã đến
    REGISTERED = "registered"  # đã tiếp nhận (numbered)
    ASSIGNED = "assigned"  # đã chuyển xử lý
    IN_PROGRESS = "in_progress"  # đang xử lý
    DONE = "done"  # đã hoàn thành
    REFUSED = "refused"  # từ chối nhận / trả lại
    RECALL_REQUESTED = "recall_requested"  # cơ quan gửi đề nghị thu hồi (chờ văn thư)
    RECALLED = "recalled"  # thu hồi
    DELETED = "deleted"  # xóa

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def vietnamese_code(self) -> str:
        return VIETNAMESE_CODES[self]

    @property
    def exchange_code(self) -> str | None:
        return EXCHANGE_CODES.get(self)


LABELS: dict[DocumentStatus, str] = {
    DocumentStatus.ARRIVED: "Đã đến",
    DocumentStatus.REGISTERED: "Đã tiếp nhận",
    DocumentStatus.ASSIGNED: "Đã chuyển xử lý",
    DocumentStatus.IN_PROGRESS: "Đang xử lý",
    DocumentStatus.DONE: "Đã hoàn thành",
    DocumentStatus.REFUSED: "Từ chối nhận / trả lại",
    DocumentStatus.RECALL_REQUESTED: "Yêu cầu thu hồi",
    DocumentStatus.RECALLED: "Thu hồi",
    DocumentStatus.DELETED: "Xóa",
}

VIETNAMESE_CODES: dict[DocumentStatus, str] = {
    DocumentStatus.ARRIVED: "da_den",
    DocumentStatus.REGISTERED: "da_tiep_nhan",
    DocumentStatus.ASSIGNED: "da_chuyen_xu_ly",
    DocumentStatus.IN_PROGRESS: "dang_xu_ly",
    DocumentStatus.DONE: "da_hoan_thanh",
    DocumentStatus.REFUSED: "tu_choi",
    DocumentStatus.RECALL_REQUESTED: "yeu_cau_thu_hoi",
    DocumentStatus.RECALLED: "thu_hoi",
    DocumentStatus.DELETED: "xoa",
}

EXCHANGE_CODES: dict[DocumentStatus, str] = {
    DocumentStatus.ARRIVED: "01",
    DocumentStatus.REFUSED: "02",
    DocumentStatus.REGISTERED: "03",
    DocumentStatus.ASSIGNED: "04",
    DocumentStatus.IN_PROGRESS: "05",
    DocumentStatus.DONE: "06",
    DocumentStatus.RECALL_REQUESTED: "13",
    DocumentStatus.RECALLED: "15",
}

S = DocumentStatus

# from -> allowed targets. Every change is one history row; there is no way around this.
TRANSITIONS: dict[DocumentStatus, frozenset[DocumentStatus]] = {
    S.ARRIVED: frozenset({S.REGISTERED, S.REFUSED, S.RECALL_REQUESTED, S.RECALLED, S.DELETED}),
    S.REGISTERED: frozenset(
        {S.ASSIGNED, S.IN_PROGRESS, S.DONE, S.REFUSED, S.RECALL_REQUESTED, S.RECALLED, S.DELETED}
    ),
    S.ASSIGNED: frozenset(
        {S.ASSIGNED, S.IN_PROGRESS, S.DONE, S.REFUSED, S.RECALL_REQUESTED, S.RECALLED}
    ),
    S.IN_PROGRESS: frozenset({S.ASSIGNED, S.DONE, S.RECALL_REQUESTED, S.RECALLED}),
    S.DONE: frozenset({S.IN_PROGRESS, S.RECALL_REQUESTED, S.RECALLED}),
    # Leaving it for anything but `recalled` is a refused recall (workflow.refuse_recall).
    S.RECALL_REQUESTED: frozenset({S.RECALLED}),
    S.REFUSED: frozenset({S.DELETED}),
    S.RECALLED: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}

# Statuses in which a document is still waiting for someone (for --overdue).
OPEN: frozenset[DocumentStatus] = frozenset(
    {S.ARRIVED, S.REGISTERED, S.ASSIGNED, S.IN_PROGRESS, S.RECALL_REQUESTED}
)


class TransitionError(MailsvcError):
    """A status change the transition table does not allow."""


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "_".join(plain.lower().replace("/", " ").replace("-", " ").split())


_BY_NAME: dict[str, DocumentStatus] = {}
for _status in DocumentStatus:
    _BY_NAME[_status.value] = _status
    _BY_NAME[VIETNAMESE_CODES[_status]] = _status
    _BY_NAME[_fold(LABELS[_status])] = _status
    if _status in EXCHANGE_CODES:
        _BY_NAME[EXCHANGE_CODES[_status]] = _status
_BY_NAME["tu_choi_nhan"] = S.REFUSED
_BY_NAME["tra_lai"] = S.REFUSED


def parse_status(text: str) -> DocumentStatus:
    """A status from its code (``registered``), Vietnamese code (``da_tiep_nhan``),
    label (``Đã tiếp nhận``) or exchange code (``03``)."""
    status = _BY_NAME.get(_fold(text))
    if status is None:
        names = ", ".join(f"{s.value} ({s.vietnamese_code})" for s in DocumentStatus)
        raise MailsvcError(f"unknown status {text!r}; expected one of: {names}")
    return status


def check_transition(current: DocumentStatus, target: DocumentStatus) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise TransitionError(
            f"cannot change status from {current.value} ({current.label}) to "
            f"{target.value} ({target.label}); allowed from {current.value}: {allowed}"
        )
