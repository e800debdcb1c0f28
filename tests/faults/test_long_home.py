"""A long home path: unix socket paths are limited to 107 bytes, so Dovecot's and clamd's
sockets live in the home's short runtime directory; mail still flows and IMAP answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailsvc.runtime import UNIX_SOCKET_MAX
from tests.e2e.conftest import PASSWORD, prepare_home, running_server, seed
from tests.faults.conftest import CLERK, clerk, imap_message_ids, message, send


async def test_serve_with_a_home_path_longer_than_a_unix_socket_path(
    service_home: Path, db_url: str
) -> None:
    home = (
        service_home.parent / ("so-thong-tin-va-truyen-thong-" * 3) / ("production-" * 4) / "home"
    )
    assert len(str(home)) > UNIX_SOCKET_MAX
    prepare_home(home, db_url)
    seed(db_url, clerk())
    async with running_server(home) as server:
        dovecot = server.app.dovecot
        assert dovecot.lmtp_path.is_socket()
        assert len(str(dovecot.lmtp_path)) <= UNIX_SOCKET_MAX
        longest = max(len(str(p)) for p in dovecot.base_dir.rglob("*") if p.is_socket())
        assert longest <= UNIX_SOCKET_MAX
        clamd = server.app.clamd
        assert clamd is not None and len(clamd.address) <= UNIX_SOCKET_MAX

        reply = await asyncio.to_thread(send, server.addr("smtp"), message(subject="Nhà dài"))
        assert reply.startswith("250")
        ids = await asyncio.to_thread(imap_message_ids, server.addr("imap"), CLERK, PASSWORD)
        assert len(ids) == 1
        runtime = dovecot.runtime_dir
    assert not (runtime / "dovecot").exists()  # removed on stop
