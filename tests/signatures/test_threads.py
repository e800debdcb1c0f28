"""Validation in threads of one process (``pipeline.workers = 0``, ``mailsvc verify`` of
several files): each thread validates with its own parsed trust material.

asn1crypto parses lazily and builds a structure's list of fields in place the first time
one is read. The parsed trust roots and CRLs were one copy per process: two threads
validating at once read a half-built list, and valid signatures came out "malformed: No
field numbered 2 is present" (CI saw it once in `mailsvc verify`; with a 1 µs thread
switch interval it came in a third of the rounds below). A worker process validates in one
thread and keeps one copy, as before.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import DocumentOutcome

from .pki import SamplePki, make_pdf, signed_pdf

ROUNDS = 15  # the race showed in 13 of 40 rounds: 15 clean rounds by chance is under 0.3 %


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms: races show at once."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


@pytest.mark.long(10)
def test_valid_signatures_stay_valid_when_threads_validate_at_once(
    pki: SamplePki, fast_switching: None
) -> None:
    documents = [
        (f"qd-{i}.pdf", signed_pdf(make_pdf(), pki.personal, pki.organisation)) for i in range(8)
    ]
    for _ in range(ROUNDS):
        # fresh threads each round: each parses its trust material anew, all at once
        with ThreadPoolExecutor(8) as threads:
            engine = SignatureEngine(SignaturePolicy(), pki.trust_config(), executor=threads)
            reports = asyncio.run(engine.verify_files(documents))
        details = [s.detail for r in reports for s in r.signatures]
        assert [r.outcome for r in reports] == [DocumentOutcome.VALID] * 8, details
