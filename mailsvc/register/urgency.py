"""Urgency (độ khẩn): stable ASCII codes, Vietnamese labels."""

from __future__ import annotations

import unicodedata
from enum import Enum

from mailsvc.errors import MailsvcError


class Urgency(str, Enum):
    NORMAL = "normal"  # thường
    URGENT = "urgent"  # Khẩn
    VERY_URGENT = "very_urgent"  # Thượng khẩn
    IMMEDIATE = "immediate"  # Hỏa tốc

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def is_urgent(self) -> bool:
        return self is not Urgency.NORMAL


LABELS: dict[Urgency, str] = {
    Urgency.NORMAL: "Thường",
    Urgency.URGENT: "Khẩn",
    Urgency.VERY_URGENT: "Thượng khẩn",
    Urgency.IMMEDIATE: "Hỏa tốc",
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "_".join(plain.lower().replace("-", " ").split())


_BY_NAME: dict[str, Urgency] = {u.value: u for u in Urgency}
_BY_NAME.update(
    {
        "": Urgency.NORMAL,
        "thuong": Urgency.NORMAL,
        "khan": Urgency.URGENT,
        "thuong_khan": Urgency.VERY_URGENT,
        "hoa_toc": Urgency.IMMEDIATE,
        "hoa_toc_hen_gio": Urgency.IMMEDIATE,
    }
)


def parse_urgency(text: str) -> Urgency:
    """From a code (``urgent``) or the Vietnamese word (``Thượng khẩn``, ``hoa_toc``)."""
    found = _BY_NAME.get(_fold(text or ""))
    if found is None:
        names = ", ".join(f"{u.value} ({u.label})" for u in Urgency)
        raise MailsvcError(f"unknown urgency {text!r}; expected one of: {names}")
    return found


def urgency_of(text: str) -> Urgency:
    """Like :func:`parse_urgency` but never raises: unknown text counts as normal."""
    try:
        return parse_urgency(text)
    except MailsvcError:
        return Urgency.NORMAL
