"""policies/classification.yaml: which markings keep a message off the system (typed, validated).

A category is a security level (Mật, Tối mật, Tuyệt mật: ``security_level: true``, which
also makes it a value of the "Độ mật:" label) or an extra kind of document some agencies
keep off the system (complaints and denunciations). ``markings`` are written as printed,
in upper case with diacritics; the detection rules live in
:mod:`mailsvc.documents.markings`.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mailsvc.errors import ConfigError
from mailsvc.policy.pipeline import describe_error, load_yaml


class Unreadable(StrEnum):
    """What a part whose text cannot be read leads to."""

    ERROR = "error"  # error finding → tempfail (451): fail closed, the sender retries
    REFUSE = "refuse"  # fail finding, reason "unreadable-content" → 554
    IGNORE = "ignore"  # treated as if it held no marking


class UnreadablePolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    corrupt: Unreadable = Unreadable.ERROR
    encrypted: Unreadable = Unreadable.REFUSE
    too_large: Unreadable = Field(default=Unreadable.REFUSE, alias="too-large")
    unsupported: Unreadable = Unreadable.IGNORE
    # a scan (PDF page without text, image attachment) with ink but no words OCR can read
    illegible: Unreadable = Unreadable.REFUSE

    def for_kind(self, kind: str) -> Unreadable:
        if kind == "timeout":
            return Unreadable.ERROR  # never configurable: a timeout is always fail-closed
        return {
            "corrupt": self.corrupt,
            "encrypted": self.encrypted,
            "too-large": self.too_large,
            "unsupported": self.unsupported,
            "illegible": self.illegible,
        }.get(kind, Unreadable.ERROR)  # "ocr-unavailable" and the unknown: fail closed


def _nfc_list(values: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(" ".join(unicodedata.normalize("NFC", v).split()) for v in values)
    if any(not v for v in out):
        raise ValueError("empty entry")
    return out


class Category(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str  # Vietnamese, shown in notices: "Tối mật"
    enabled: bool = True
    security_level: bool = False  # a value of "Độ mật:"; rank orders the levels
    rank: int = Field(default=0, ge=0)  # higher wins when several categories match
    markings: tuple[str, ...] = Field(min_length=1)  # as printed: "TỐI MẬT"
    # A subject (or document title) starting with the marking and then a word counts in any
    # letter case for these categories; for the others only in upper case.
    prefix_any_case: bool = False
    # Words (without diacritics) that make the marking ordinary prose when they come right
    # before / after it: "bí mật", "mật khẩu".
    ordinary_before: tuple[str, ...] = ()
    ordinary_after: tuple[str, ...] = ()
    # File-name phrases without diacritics, matched on whole words ("tuyet mat", "toimat").
    # A one-word phrase ("mat") counts only in brackets or as the first or last word.
    filename_words: tuple[str, ...] = ()

    @field_validator("markings", "ordinary_before", "ordinary_after", "filename_words")
    @classmethod
    def _nfc(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _nfc_list(v)

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = unicodedata.normalize("NFC", v).strip()
        if not v:
            raise ValueError("empty title")
        return v


class ClassificationPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    unreadable: UnreadablePolicy = UnreadablePolicy()
    categories: dict[str, Category] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: object) -> object:
        return str(v) if isinstance(v, int | float) else v

    @field_validator("categories")
    @classmethod
    def _codes(cls, v: dict[str, Category]) -> dict[str, Category]:
        for code in v:
            if not code or not all(c.isascii() and (c.isalnum() or c == "-") for c in code):
                raise ValueError(f"category code {code!r} must be kebab-case ASCII")
        return v

    def enabled(self) -> list[tuple[str, Category]]:
        """Enabled categories, strongest first (rank, then longer markings first)."""
        items = [(code, c) for code, c in self.categories.items() if c.enabled]
        return sorted(items, key=lambda item: (-item[1].rank, -max(map(len, item[1].markings))))


def load_classification_policy(path: Path | str) -> ClassificationPolicy:
    """Load and validate; an invalid file raises ConfigError naming the file and the key."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: key '(top level)': expected a mapping")
    try:
        return ClassificationPolicy.model_validate(data)
    except ValidationError as exc:
        raise describe_error(path, exc) from exc
