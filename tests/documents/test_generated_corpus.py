"""The generated corpus (tests/documents/generator.py) through the real extractor, worker
pool, classification and metadata stages: markings at precision and recall 1.0 in every
position and form the rules use, metadata ≥ 98% per field."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from mailsvc.documents.pool import WorkerPool
from tests.documents import generator
from tests.documents.accuracy import FIELDS, Report, measure


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.shutdown(wait=True, cancel_futures=True)


def test_corpus_covers_every_rule() -> None:
    docs = generator.corpus()
    assert len(docs) >= 150
    assert len({d.id for d in docs}) == len(docs)
    positives = [d for d in docs if d.level]
    negatives = [d for d in docs if not d.level]
    assert len(positives) >= 60 and len(negatives) >= 60
    # every position in every format it exists in, every level, every form, every trap
    seen = {(d.position, d.fmt) for d in positives}
    for positions in (generator.POSITIONS, generator.LATE_POSITIONS):
        for position, fmts in positions.items():
            for fmt in fmts:
                assert (position, fmt) in seen, (position, fmt)
    assert Counter(d.level for d in positives).keys() == set(generator.LEVELS)
    assert {d.form for d in positives} == set(generator.FORMS)
    assert {d.trap for d in negatives} >= set(generator.TRAPS)
    # ô 10a in every level, in PDF and DOCX, in the state and the Party layout
    standard = {(d.level, d.fmt, d.style) for d in positives if d.position == "under-number"}
    for level in generator.LEVELS:
        for fmt in ("pdf", "docx"):
            assert any((level, fmt, style) in standard for style in ("state", "party"))


@pytest.fixture(scope="module")
def report(pool: WorkerPool) -> Report:
    return asyncio.run(measure(generator.corpus(), pool))


def test_markings_precision_and_recall_are_one(report: Report) -> None:
    precision, recall = report.precision_recall()
    print("\n" + report.table())
    assert report.wrong() == []
    assert (precision, recall) == (1.0, 1.0)


@pytest.mark.parametrize("name", FIELDS)
def test_metadata_field_accuracy(report: Report, name: str) -> None:
    accuracy = report.field_accuracy(name)
    assert accuracy >= 0.98, (name, accuracy, report.field_misses(name)[:10])
