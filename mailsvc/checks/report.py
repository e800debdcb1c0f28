"""The compliance report as one self-contained HTML file (templates/reports/checks.html.j2).

Inline CSS and inline SVG only: no script, no font, no image, no address outside the
file, so it opens on a machine without network and can be mailed or archived as is.
Contents: the rules applied, a table per mailbox, a calendar heat map of compliance
(all mailboxes, then each mailbox), and a chart of check times (day × time of day,
check windows shaded). The template gets plain values with the SVG geometry computed
here; it never sees ORM objects. Times are ISO 8601 in +07:00.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailsvc.checks.compliance import DayCompliance, days_between
from mailsvc.checks.policy import CheckingPolicy
from mailsvc.time import vn_date, vn_datetime

TEMPLATE = "reports/checks.html.j2"
# Beyond this many mailboxes, the per-mailbox charts of check times are left out (the
# combined chart and every heat map stay): a year of checks of 200 mailboxes as dots
# would make a file of tens of megabytes. `--mailbox` gives any one of them.
MAX_MAILBOX_CHARTS = 31

CELL, GAP, LEFT, TOP = 11, 2, 26, 16
WEEKDAY_LABELS = ("T2", "T3", "T4", "T5", "T6", "T7", "CN")
STATUS_LABELS = {
    "compliant": "Đạt",
    "non-compliant": "Không đạt",
    "pending": "Chưa đến hạn",
    "non-working": "Ngày nghỉ",
}
WINDOW_LABELS = {"met": "đã kiểm tra", "missed": "bỏ lỡ", "pending": "chưa đến hạn"}

PLOT_LEFT, PLOT_TOP, PLOT_W, PLOT_H = 44, 10, 880, 288  # 12 px per hour
SLOT_MINUTES = 10


@dataclass(frozen=True)
class Cell:
    x: int
    y: int
    css: str
    title: str


def _cell_class(day: DayCompliance) -> str:
    if day.status == "compliant":
        return "ok"
    if day.status == "pending":
        return "pend"
    if day.status == "non-working":
        return "off"
    met = len(day.windows_with("met"))
    if day.working_day and met == 0:
        return "bad0"
    if day.windows_with("missed"):
        return "bad1"
    return "bad2"  # windows met, but too few checks or a priority message late


def _cell_title(day: DayCompliance) -> str:
    parts = [f"{vn_date(day.day)}: {STATUS_LABELS[day.status]}", f"{len(day.checks)} lần"]
    missed = day.windows_with("missed")
    if missed:
        parts.append("bỏ lỡ " + ", ".join(missed))
    late = sum(1 for p in day.priority if p.status == "late")
    if late:
        parts.append(f"{late} thư ưu tiên trễ")
    return "; ".join(parts)


def _grid(start: date, end: date, cells: dict[date, tuple[str, str]]) -> dict[str, Any]:
    """A calendar: one column per week (Monday first), one row per weekday."""
    monday = start - timedelta(days=start.weekday())
    weeks = (end - monday).days // 7 + 1
    out: list[Cell] = []
    months: list[dict[str, Any]] = []
    day = start
    while day <= end:
        col, row = (day - monday).days // 7, day.weekday()
        css, title = cells.get(day, ("none", vn_date(day)))
        out.append(Cell(LEFT + col * (CELL + GAP), TOP + row * (CELL + GAP), css, title))
        if (day.day == 1 or day == start) and (not months or col - months[-1]["col"] >= 3):
            text = (
                f"{day.month:02d}/{day.year}"
                if day == start or day.month == 1
                else f"{day.month:02d}"
            )
            months.append({"x": LEFT + col * (CELL + GAP), "col": col, "text": text})
        day += timedelta(days=1)
    return {
        "width": LEFT + weeks * (CELL + GAP) + 4,
        "height": TOP + 7 * (CELL + GAP) + 2,
        "cell": CELL,
        "cells": out,
        "months": months,
        "weekdays": [
            {"y": TOP + i * (CELL + GAP) + CELL - 2, "text": t}
            for i, t in enumerate(WEEKDAY_LABELS)
            if i % 2 == 0
        ],
    }


def _aggregate_cells(days: Sequence[DayCompliance]) -> dict[date, tuple[str, str]]:
    by_day: dict[date, list[DayCompliance]] = defaultdict(list)
    for d in days:
        by_day[d.day].append(d)
    out: dict[date, tuple[str, str]] = {}
    for day, items in by_day.items():
        decided = [d for d in items if d.working_day and d.status != "pending"]
        good = sum(1 for d in decided if d.status == "compliant")
        if decided:
            rate = good / len(decided)
            css = (
                "a4"
                if rate == 1
                else "a3"
                if rate >= 0.9
                else "a2"
                if rate >= 0.75
                else "a1"
                if rate >= 0.5
                else "a0"
            )
            title = f"{vn_date(day)}: {good}/{len(decided)} hộp thư đạt ({rate:.0%})"
        elif any(d.working_day for d in items):
            css, title = "pend", f"{vn_date(day)}: chưa đến hạn"
        else:
            css, title = "off", f"{vn_date(day)}: ngày nghỉ"
        out[day] = (css, title)
    return out


def _scatter(
    start: date, end: date, days: Sequence[DayCompliance], policy: CheckingPolicy
) -> dict[str, Any]:
    """Check times: x = day, y = time of day; checks grouped in 10-minute slots."""
    ndays = (end - start).days + 1
    step = PLOT_W / ndays
    slots: Counter[tuple[int, int]] = Counter()
    for d in days:
        index = (d.day - start).days
        for c in d.checks:
            slots[index, (c.hour * 60 + c.minute) // SLOT_MINUTES] += 1
    windows = [
        (w.start.hour * 60 + w.start.minute, w.end.hour * 60 + w.end.minute) for w in policy.windows
    ]

    def y_of(minutes: float) -> float:
        return PLOT_TOP + minutes / 1440 * PLOT_H

    # Dots fit the day's column; a darker dot means more checks in that slot.
    radius = round(min(3.0, max(1.1, step / 2)), 1)
    most = max(slots.values(), default=1)
    dots = []
    for (index, slot), count in sorted(slots.items()):
        minute = slot * SLOT_MINUTES
        inside = any(a <= minute + SLOT_MINUTES / 2 <= b for a, b in windows)
        when = start + timedelta(days=index)
        dots.append(
            {
                "cx": round(PLOT_LEFT + (index + 0.5) * step, 1),
                "cy": round(y_of(minute + SLOT_MINUTES / 2), 1),
                "r": radius,
                "opacity": round(0.3 + 0.7 * count / most, 2),
                "css": "in" if inside else "out",
                "title": f"{vn_date(when)} {minute // 60:02d}:{minute % 60:02d}: {count} lần",
            }
        )
    bands = [
        {
            "y": round(y_of(a), 1),
            "h": round(y_of(b) - y_of(a), 1),
            "label": w.label,
            "label_y": round(y_of(b) - 1, 1),
        }
        for (a, b), w in zip(windows, policy.windows, strict=True)
    ]
    hours = [{"y": round(y_of(h * 60), 1), "text": f"{h:02d}:00"} for h in range(0, 25, 3)]
    # Day ticks: the first of each month over a long period, else every few days.
    every = max(1, ndays // 8)
    months = [
        {
            "x": round(PLOT_LEFT + i * step, 1),
            "text": f"{day.month:02d}/{day.year}"
            if ndays > 62
            else f"{day.day:02d}/{day.month:02d}",
        }
        for i, day in enumerate(days_between(start, end))
        if (day.day == 1 if ndays > 62 else i % every == 0)
    ]
    return {
        "width": PLOT_LEFT + PLOT_W + 70,
        "height": PLOT_TOP + PLOT_H + 24,
        "left": PLOT_LEFT,
        "top": PLOT_TOP,
        "plot_w": PLOT_W,
        "plot_h": PLOT_H,
        "right": PLOT_LEFT + PLOT_W,
        "bottom": PLOT_TOP + PLOT_H,
        "dots": dots,
        "bands": bands,
        "hours": hours,
        "months": months,
    }


def _summary(mailbox: str, days: Sequence[DayCompliance]) -> dict[str, Any]:
    working = [d for d in days if d.working_day]
    decided = [d for d in working if d.status != "pending"]
    good = sum(1 for d in decided if d.status == "compliant")
    priority = [p for d in days for p in d.priority]
    return {
        "mailbox": mailbox,
        "working_days": len(working),
        "compliant": good,
        "non_compliant": sum(1 for d in days if d.status == "non-compliant"),
        "pending": sum(1 for d in days if d.status == "pending"),
        "windows_missed": sum(len(d.windows_with("missed")) for d in days),
        "checks": sum(len(d.checks) for d in days),
        "priority": len(priority),
        "priority_late": sum(1 for p in priority if p.status == "late"),
        "rate": f"{good / len(decided):.1%}".replace(".", ",") if decided else "—",
    }


def _problems(days: Sequence[DayCompliance]) -> list[dict[str, Any]]:
    return [
        {
            "date": vn_date(d.day),
            "checks": len(d.checks),
            "min_checks": d.min_checks,
            "missed": ", ".join(d.windows_with("missed")) or "—",
            "check_times": ", ".join(f"{c:%H:%M}" for c in d.checks) or "—",
            "priority": "; ".join(
                f"{p.sender} lúc {p.arrived_at:%H:%M}: "
                + (f"{p.delay_minutes} phút" if p.delay_minutes is not None else "chưa kiểm tra")
                for p in d.priority
                if p.status == "late"
            )
            or "—",
        }
        for d in days
        if d.status == "non-compliant"
    ]


def report_values(
    days: Sequence[DayCompliance],
    policy: CheckingPolicy,
    start: date,
    end: date,
    *,
    generated_at: datetime,
) -> dict[str, Any]:
    by_mailbox: dict[str, list[DayCompliance]] = defaultdict(list)
    for d in days:
        by_mailbox[d.mailbox].append(d)
    charts = len(by_mailbox) <= MAX_MAILBOX_CHARTS
    mailboxes = [
        {
            **_summary(mailbox, items),
            "heatmap": _grid(start, end, {d.day: (_cell_class(d), _cell_title(d)) for d in items}),
            "scatter": _scatter(start, end, items, policy) if charts else None,
            "problems": _problems(items),
        }
        for mailbox, items in sorted(by_mailbox.items())
    ]
    return {
        "title": "Báo cáo kiểm tra hộp thư công vụ",
        "start": vn_date(start),
        "end": vn_date(end),
        "generated_at": vn_datetime(generated_at),
        "policy_version": policy.version,
        "windows": [{"name": w.name, "label": w.label} for w in policy.windows],
        "min_checks": policy.min_checks_per_day,
        "max_delay": policy.priority.max_delay_minutes,
        "overall": _grid(start, end, _aggregate_cells(days)),
        "scatter": _scatter(start, end, days, policy),
        "mailboxes": mailboxes,
        "mailbox_charts": charts,
        "max_mailbox_charts": MAX_MAILBOX_CHARTS,
    }


def render_html(
    days: Sequence[DayCompliance],
    policy: CheckingPolicy,
    start: date,
    end: date,
    templates: Path,
    *,
    generated_at: datetime,
) -> str:
    env = Environment(
        loader=FileSystemLoader(str(templates)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    values = report_values(days, policy, start, end, generated_at=generated_at)
    return env.get_template(TEMPLATE).render(values)
