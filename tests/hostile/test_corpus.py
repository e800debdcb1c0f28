"""The hostile corpus through a running mailsvc: each message gets its expected answer
within its time bound, no stage crashes, never a 4xx (every cause here is permanent),
and the server keeps answering."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import ThreadedServer
from tests.hostile.corpus import CASES, FILES_USED, MESSAGES, Case


def test_corpus_is_large_and_every_message_file_is_used() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
    files = {p.stem for p in MESSAGES.glob("*.eml")}
    assert files == FILES_USED, files ^ FILES_USED


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_message(hostile_server: ThreadedServer, case: Case) -> None:
    raw = case.build()
    crashes_before = len(hostile_server.watch.crashes)
    reply = hostile_server.send(
        raw, listener=case.listener, sender=case.sender, recipient=case.recipient
    )
    assert reply.code // 100 != 4, f"{case.name}: a retry cannot help: {reply}"
    assert reply.code == case.code and case.text in reply.text, f"{case.name}: {reply}"
    assert reply.seconds < case.seconds, f"{case.name}: answered in {reply.seconds:.1f} s"
    hostile_server.idle()
    assert hostile_server.watch.crashes[crashes_before:] == [], case.name
