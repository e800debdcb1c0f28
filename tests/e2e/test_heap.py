"""The service's processes keep what they hold after start-up out of the cyclic
collector's walks (``settle_heap``): the SMTP process from the end of ``App.start`` until
``App.stop``, each pool worker for its life. A message still goes through meanwhile."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailsvc.supervisor import YOUNG_COLLECTION_THRESHOLD, settle_heap
from tests.e2e.conftest import DOMAIN, prepare_home, running_server, seed

CLERK = f"vanthu@{DOMAIN}"


@pytest.fixture
def collector_as_found() -> Iterator[tuple[int, int, int]]:
    """The collector's state before the test, put back after it whatever happens."""
    before = gc.get_threshold()
    gc.unfreeze()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


class _Held:
    pass


def test_settle_freezes_and_raises_the_young_threshold_and_undo_puts_both_back(
    collector_as_found: tuple[int, int, int],
) -> None:
    held = [_Held() for _ in range(1000)]  # alive: frozen with the rest
    probe = weakref.ref(held[0])
    undo = settle_heap()
    try:
        assert gc.get_freeze_count() >= len(held)
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *collector_as_found[1:])
        del held  # a frozen object is still freed when nothing refers to it
        assert probe() is None
    finally:
        undo()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == collector_as_found


async def test_the_running_service_and_its_workers_are_settled(
    service_home: Path, db_url: str, collector_as_found: tuple[int, int, int]
) -> None:
    prepare_home(service_home, db_url)
    seed(db_url)
    async with running_server(service_home) as server:
        assert gc.get_freeze_count() > 10_000  # the modules, the mappers, the settings
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
        loop = asyncio.get_running_loop()
        executor = server.app.executor
        frozen, threshold = await asyncio.gather(
            loop.run_in_executor(executor, gc.get_freeze_count),
            loop.run_in_executor(executor, gc.get_threshold),
        )
        assert frozen > 10_000 and threshold[0] == YOUNG_COLLECTION_THRESHOLD

        server.add_mailbox(CLERK)
        msg = EmailMessage()
        msg["From"] = "Phòng Hành chính <hanhchinh@congty.example.com>"
        msg["To"] = CLERK
        msg["Subject"] = "Thử nghiệm"
        msg["Message-ID"] = "<heap-1@congty.example.com>"
        msg.set_content("Kính gửi Văn thư.\n")

        def send() -> dict[str, tuple[int, bytes]]:
            with server.smtp() as client:
                return client.send_message(msg)

        assert await asyncio.to_thread(send) == {}

        def in_mailbox() -> int:  # the 250 came after the delivery
            with server.imap(CLERK) as imap:
                imap.select("INBOX")
                return len(imap.search(None, "ALL")[1][0].split())

        assert await asyncio.to_thread(in_mailbox) == 1
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == collector_as_found
