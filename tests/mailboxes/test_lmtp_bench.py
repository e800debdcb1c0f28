"""bench/lmtp.py's instrument: Dovecot's CPU read from /proc while deliveries run, and
nothing else's (its ``--rounds`` figures rest on it)."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys

import pytest

from bench.lmtp import body, deliver_all, dovecot_cpu, positive
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient
from tests.mailboxes.conftest import PASSWORD, Accounts, Imap

# Burns 0.4 s of CPU, says "done", then waits (alive, so /proc still lists it) for stdin.
BURN = """
import sys, time
while time.process_time() < 0.4:
    pass
print("done", flush=True)
sys.stdin.read()
"""


async def test_dovecots_cpu_grows_with_deliveries_and_counts_no_other_child(
    accounts: Accounts, dovecot: DovecotService, lmtp: LmtpClient
) -> None:
    user = accounts.add("bench")
    start = dovecot_cpu()
    queue = [body(20_000, i) for i in range(300)]
    await asyncio.gather(*(deliver_all(lmtp, queue, user) for _ in range(4)))
    assert not queue
    delivered = dovecot_cpu()
    # ~1-3 ms a delivery, in /proc's 10 ms ticks
    assert delivered - start >= 0.05, (start, delivered)

    # a busy child of this process that is not Dovecot, read while it is alive: 0.4 s of
    # CPU, none of it counted
    burner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BURN, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert burner.stdout is not None
        assert (await asyncio.wait_for(burner.stdout.readline(), 60)).strip() == b"done"
        assert dovecot_cpu() - delivered < 0.2
    finally:
        assert burner.stdin is not None
        burner.stdin.close()
        await asyncio.wait_for(burner.wait(), 30)

    with Imap(*dovecot.imap_address) as imap:
        imap.login(user, PASSWORD)
        status = imap.status("INBOX", "(MESSAGES)")
    assert b"MESSAGES 300" in status[1][0]


def test_counts_below_one_are_refused_with_a_message() -> None:
    assert positive("3") == 3
    for bad in ("0", "-2"):
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
            positive(bad)
    with pytest.raises(ValueError):
        positive("x")
