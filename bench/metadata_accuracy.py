"""Field-level accuracy of ``extract_metadata``, per category of document. Not a test.

    python bench/metadata_accuracy.py [--misses]

Categories:

- corpus:        the labelled corpus in tests/data/metadata (State and Party layouts, the
                 regulations' own texts; its labels carry no place nor signer title)
- one line per pattern of published documents (tests/documents/metadata_patterns.py):
                 place-line, abstract-dates, agency-keyword, place-names, signature,
                 abstract-forms, draft, text-damage, glued; each counts the cases written
                 with the rules and the held-out ones written after them
- all patterns:  the totals, then the held-out cases alone

Each cell is "right/documents"; "-" where the category's labels do not record the field.
The table is Markdown, as pasted in the README. ``--misses`` lists every wrong field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailsvc.documents.metadata import extract_metadata  # noqa: E402
from tests.documents.metadata_patterns import CASES, FIELDS, HELD_OUT, PATTERNS  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "metadata"
COLUMNS = {
    "issuing_agency": "agency",
    "parent_agency": "parent",
    "number_notation": "number",
    "issued_date": "date",
    "issued_place": "place",
    "doc_type": "type",
    "abstract": "abstract",
    "signer": "signer",
    "signer_title": "title",
}
assert tuple(COLUMNS) == FIELDS


Row = tuple[str, dict[str, Any], dict[str, Any]]  # (name, observed, expected)


def corpus_rows() -> list[Row]:
    labels = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    rows = []
    for name, item in labels.items():
        text = (CORPUS / name).read_text(encoding="utf-8")
        got = extract_metadata(text, item["subject"], item["headers"], item["attachments"])
        rows.append((name, got.to_dict(), item["expected"]))
    return rows


def pattern_rows(category: str = "", held_out: bool | None = None) -> list[Row]:
    return [
        (case.name, extract_metadata(case.text).to_dict(), case.expected)
        for case in CASES + HELD_OUT
        if (not category or case.category == category)
        and (held_out is None or case.held_out == held_out)
    ]


def score(label: str, rows: list[Row], misses: list[str]) -> tuple[str, dict[str, tuple[int, int]]]:
    counts: dict[str, tuple[int, int]] = {}
    for field in FIELDS:
        right = total = 0
        for name, got, expected in rows:
            if field not in expected:
                continue
            total += 1
            if got[field] == expected[field]:
                right += 1
            else:
                misses.append(f"{label}/{name}: {field} = {got[field]!r}, want {expected[field]!r}")
        counts[field] = (right, total)
    cells = [f"{r}/{t}" if t else "-" for r, t in counts.values()]
    return f"| {label} | {len(rows)} | " + " | ".join(cells) + " |", counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--misses", action="store_true", help="list every wrong field")
    args = parser.parse_args()

    misses: list[str] = []
    print("| category | documents | " + " | ".join(COLUMNS.values()) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
    line, _ = score("corpus", corpus_rows(), misses)
    print(line)
    for category in PATTERNS:
        print(score(category, pattern_rows(category), misses)[0])
    for label, rows in (
        ("all patterns", pattern_rows()),
        ("held out", pattern_rows(held_out=True)),
    ):
        _, counts = score(label, rows, [])
        cells = [f"{r}/{t} ({r / t:.0%})" for r, t in counts.values()]
        print(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    if args.misses:
        for miss in misses:
            print("miss:", miss)


if __name__ == "__main__":
    main()
