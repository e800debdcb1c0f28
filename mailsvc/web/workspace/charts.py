"""Small SVG charts drawn on the server (no script): vertical bars for a series over
time, horizontal bars for a ranking. Labels are escaped; sizes are fixed so the page
lays out before the picture arrives, and the SVG scales down on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

BAR = "#2f5d8a"
ALT = "#c0392b"
GRID = "#d0d7de"
TEXT = "#24292f"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    title: str = ""  # tooltip; the label and value when empty


def _nice_max(value: float, ticks: int = 4) -> float:
    """The smallest top of the axis ≥ ``value`` whose ``ticks`` steps are round numbers
    (1, 2 or 5 × 10^k), so counts get whole-number ticks: 4 → 4, 5 → 8, 130 → 200."""
    need = max(value, 1.0) / ticks
    magnitude = 1.0
    while magnitude * 10 <= need:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= need:
            return step * magnitude * ticks
    return 10 * magnitude * ticks


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def columns(bars: Sequence[Bar], *, title: str, width: int = 640, height: int = 220) -> str:
    """Vertical bars (e.g. documents per month)."""
    left, bottom, top = 36, 36, 24
    plot_h = height - bottom - top
    top_value = _nice_max(max((b.value for b in bars), default=0))
    slot = (width - left - 8) / max(len(bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = top + plot_h * i / 4
        value = top_value * (4 - i) / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="{TEXT}">{_number(value)}</text>'
        )
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / top_value
        x = left + i * slot + slot * 0.15
        y = top + plot_h - h
        tip = bar.title or f"{bar.label}: {_number(bar.value)}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{escape(tip)}</title></rect>'
            f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 14}" font-size="10" '
            f'text-anchor="middle" fill="{TEXT}">{escape(bar.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def ranking(bars: Sequence[Bar], *, title: str, width: int = 640, row: int = 22) -> str:
    """Horizontal bars with their labels (e.g. documents per agency, status mix)."""
    label_w = 250
    height = max(len(bars), 1) * row + 8
    top_value = _nice_max(max((b.value for b in bars), default=0))
    span = width - label_w - 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = 4 + i * row
        w = span * bar.value / top_value
        label = bar.label if len(bar.label) <= 40 else bar.label[:39] + "…"
        tip = bar.title or f"{bar.label}: {_number(bar.value)}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row * 0.65:.1f}" font-size="11" '
            f'text-anchor="end" fill="{TEXT}">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{BAR}"><title>{escape(tip)}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + row * 0.65:.1f}" font-size="11" '
            f'fill="{TEXT}">{_number(bar.value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
