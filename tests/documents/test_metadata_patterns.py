"""The nine patterns of published documents (metadata_patterns.py), one test per case."""

from __future__ import annotations

import pytest

from tests.documents.metadata_patterns import CASES, FIELDS, PATTERNS, PatternCase, observed


def test_every_pattern_has_several_variants() -> None:
    for category in PATTERNS:
        assert len([c for c in CASES if c.category == category]) >= 3, category
    assert {c.category for c in CASES} == set(PATTERNS)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}/{c.name}" for c in CASES])
def test_pattern_case(case: PatternCase) -> None:
    got = observed(case)
    wrong = {f: (got[f], case.expected[f]) for f in FIELDS if got[f] != case.expected[f]}
    assert not wrong
