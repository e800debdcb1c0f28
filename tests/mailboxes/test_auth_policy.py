"""The auth policy server as Dovecot speaks to it (real HTTP on loopback, real database):
the key is required, lock-out state is read and failures are written on the SMTP rows."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select

from mailsvc.db.models import AuthFailure
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.lockout import Lockout
from mailsvc.mailboxes.auth_policy import API_HEADER, AuthPolicyServer

ACCOUNT = "vanthu@so-tp.gov.vn"


async def test_policy_server_speaks_dovecots_protocol_on_the_lockout_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    server = AuthPolicyServer(sessions, Lockout(threshold=2, base_seconds=60, max_seconds=600))
    endpoint = await server.start()
    settings = endpoint.dovecot_settings()
    header, _, key = settings["auth_policy_server_api_header"].partition(":")
    assert header == API_HEADER and key
    request = {"login": ACCOUNT.upper(), "remote": "192.0.2.7", "protocol": "imap"}
    try:
        async with aiohttp.ClientSession() as http:

            async def call(command: str, body: object, api_key: str = key) -> tuple[int, dict]:
                async with http.post(
                    f"{endpoint.url}?command={command}", json=body, headers={API_HEADER: api_key}
                ) as reply:
                    return reply.status, await reply.json()

            # Without the key (any other local process): nothing is read or written.
            assert (await call("report", request | {"success": False}, "guess"))[0] == 403
            assert await call("allow", request) == (200, {"status": 0, "msg": ""})
            for _ in range(2):
                status, _ = await call("report", request | {"success": False})
                assert status == 200
            status, answer = await call("allow", request)
            assert status == 200 and answer["status"] == -1
            assert answer["msg"].startswith("Too many failed logins, try again after 20")
            assert answer["msg"].endswith("+07:00")
            # A login we refused ourselves is not counted again.
            await call("report", request | {"success": False, "policy_reject": True})
            # Another client address is not locked.
            assert (await call("allow", request | {"remote": "192.0.2.8"}))[1]["status"] == 0
            assert (await call("nonsense", request))[0] == 400
            assert (await call("allow", ["not", "an", "object"]))[0] == 400
    finally:
        await server.stop()
    with sessions() as session:
        row = session.scalars(select(AuthFailure)).one()
        assert (row.account, row.client_ip, row.lockouts) == (ACCOUNT, "192.0.2.7", 1)
        assert row.locked_until is not None
    engine.dispose()
