"""Spam is deleted, not kept: the Junk folder of every mailbox is purged of messages saved
more than ``retention.junk_days`` ago (default 30), by Dovecot's own ``doveadm expunge``.

Runs from the retention job. Managed mode uses the generated HOME/dovecot/dovecot.conf (the
Dovecot started by ``mailsvc serve`` must be running: doveadm asks its auth process where
each mailbox lives); system mode uses the system's configuration.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailsvc.config import Settings
from mailsvc.errors import DependencyError

log = logging.getLogger(__name__)

JUNK = "Junk"


@dataclass(frozen=True)
class JunkPurge:
    mailboxes: int
    failed: tuple[str, ...]

    def summary(self, days: int) -> str:
        done = self.mailboxes - len(self.failed)
        text = f"Junk older than {days} days purged in {done} mailboxes"
        if self.failed:
            text += f"; failed: {', '.join(self.failed[:5])}" + (
                f" and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
            )
        return text


def doveadm_command(settings: Settings) -> list[str]:
    binary = shutil.which("doveadm") or "/usr/bin/doveadm"
    if settings.dovecot.mode == "managed":
        return [binary, "-c", str(settings.home / "dovecot" / "dovecot.conf")]
    return [binary]


async def purge_junk(settings: Settings, addresses: Sequence[str], before: datetime) -> JunkPurge:
    """``doveadm expunge -u ADDRESS mailbox Junk savedbefore <before>`` for each mailbox.
    A mailbox without a Junk folder is fine; any other failure is reported, not raised,
    unless Dovecot itself cannot be reached (then :class:`DependencyError`)."""
    base = doveadm_command(settings)
    failed: list[str] = []
    stamp = str(int(before.timestamp()))
    for address in addresses:
        process = await asyncio.create_subprocess_exec(
            *base, "expunge", "-u", address, "mailbox", JUNK, "savedbefore", stamp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        text = err.decode("utf-8", "replace").strip()
        if process.returncode == 0 or "Mailbox doesn't exist" in text:
            continue
        if "auth-userdb" in text or "connect(" in text:
            raise DependencyError(f"Junk purge: Dovecot is not reachable: {text.splitlines()[0]}")
        log.warning("Junk purge in %s failed (%s): %s", address, process.returncode, text)
        failed.append(address)
    return JunkPurge(len(addresses), tuple(failed))
