"""The mailbox-check policy (policies/checking.yaml): working days, holidays, windows.

Public holidays come from the ``holidays`` package (Vietnam's Labour Code days, Tết and
Giỗ Tổ by the lunar calendar, observed days), for any year. The policy file keeps only what
the government announces each year: swapped or extra days off (``holidays``) and the
Saturdays worked in exchange (``extra_working_days``). A year listed under ``holidays``
(even with an empty list) counts as announced; from 1 December, a missing next year is
reported (log, /healthz, admin mail) by :meth:`CheckingPolicy.missing_swaps_year`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import holidays as holiday_calendars
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mailsvc.policy.pipeline import describe_error, load_yaml

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Window(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window {self.name!r}: end must be after start")
        return self

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class PriorityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_delay_minutes: int = Field(default=15, gt=0)
    senders: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()  # SHA-256 fingerprints, hex (any case, colons allowed)

    @field_validator("senders")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in value)

    @field_validator("certificates")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.replace(":", "").strip().lower() for v in value)

    def is_priority(self, sender: str, fingerprints: tuple[str, ...] = ()) -> bool:
        if sender.strip().lower() in self.senders:
            return True
        return any(f.replace(":", "").lower() in self.certificates for f in fingerprints)


def _parse_day(value: str) -> date:
    return date.fromisoformat(value.strip())


@functools.lru_cache(maxsize=64)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The country's public holidays of ``year`` (observed days included) from ``holidays``."""
    return frozenset(holiday_calendars.country_holidays(country, years=year))


class CheckingPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    timezone: str = "Asia/Ho_Chi_Minh"
    tracked_roles: tuple[str, ...] = ("clerk",)
    mailboxes: tuple[str, ...] = ()
    working_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    # ISO country code for the `holidays` package; "" uses only the days listed here.
    public_holidays: str = "VN"
    fixed_holidays: tuple[str, ...] = ()  # "MM-DD", on top of the package's
    holidays: dict[int, tuple[str, ...]] = Field(default_factory=dict)
    extra_working_days: tuple[date, ...] = ()
    windows: tuple[Window, ...]
    min_checks_per_day: int = Field(default=4, ge=0)
    priority: PriorityPolicy = PriorityPolicy()
    alert_roles: tuple[str, ...] = ("leader", "admin")

    @field_validator("fixed_holidays")
    @classmethod
    def _month_day(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            date.fromisoformat(f"2024-{item}")  # a leap year: 02-29 is valid
        return value

    @field_validator("holidays")
    @classmethod
    def _days(cls, value: dict[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
        for items in value.values():
            for item in items:
                first, _, last = item.partition("..")
                if last and _parse_day(last) < _parse_day(first):
                    raise ValueError(f"range {item!r} ends before it starts")
                _parse_day(first)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("public_holidays")
    @classmethod
    def _country(cls, value: str) -> str:
        if value:
            holiday_calendars.country_holidays(value)  # unknown codes raise NotImplementedError
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def holiday_dates(self, years: Iterable[int] | None = None) -> frozenset[date]:
        """Days off: the package's public holidays of ``years`` (default: the years listed
        in the file and the years around today) plus the announced ones in the file."""
        if years is None:
            this_year = date.today().year
            years = {*self.holidays, this_year - 1, this_year, this_year + 1}
        out: set[date] = set()
        if self.public_holidays:
            for year in years:
                out |= public_holidays(self.public_holidays, year)
        for items in self.holidays.values():
            for item in items:
                first, _, last = item.partition("..")
                day, end = _parse_day(first), _parse_day(last or first)
                while day <= end:
                    out.add(day)
                    day += timedelta(days=1)
        return frozenset(out)

    def is_working_day(self, day: date, holidays: frozenset[date] | None = None) -> bool:
        if day in self.extra_working_days:
            return True
        if f"{day:%m-%d}" in self.fixed_holidays:
            return False
        if day in (self.holiday_dates({day.year}) if holidays is None else holidays):
            return False
        return WEEKDAYS[day.weekday()] in self.working_days

    def missing_swaps_year(self, today: date) -> int | None:
        """From 1 December: next year, when its announced swaps are not in the file yet."""
        if today.month == 12 and today.year + 1 not in self.holidays:
            return today.year + 1
        return None

    def window_bounds(self, day: date, window: Window) -> tuple[datetime, datetime]:
        """A window of ``day`` as aware datetimes in the policy's zone."""
        return (
            datetime.combine(day, window.start, self.zone),
            datetime.combine(day, window.end, self.zone),
        )


def load_checking_policy(path: Path) -> CheckingPolicy:
    try:
        return CheckingPolicy.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise describe_error(path, exc) from exc
