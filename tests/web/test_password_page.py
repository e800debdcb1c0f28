"""The HTTPS app on a real loopback port with httpx as the client: /password; and the
plain-HTTP monitoring app beside it: /healthz, /metrics."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import accounts
from mailsvc.cli.init import ensure_tls_certificate
from mailsvc.config import PasswordSection
from mailsvc.db.base import utcnow
from mailsvc.db.models import AuditEntry, AuthFailure, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.lockout import Lockout
from mailsvc.passwords import verify_password
from mailsvc.web.app import HttpListener, make_app, make_monitoring_app, start_http

ADDRESS = "annv.stttt@stttt.example.gov.vn"
NEW = "Sông-Hồng-2024!"
CFG = PasswordSection(argon2_memory_kib=8192, argon2_time_cost=1)
THRESHOLD = 3


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    ensure_tls_certificate(d / "cert.pem", d / "key.pem", "mail.stttt.example.gov.vn")
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def one_time(sessions: sessionmaker[Session]) -> str:
    with sessions() as s:
        new = accounts.add_mailbox(
            s,
            CFG,
            actor="cli:tester",
            full_name="Nguyễn Văn An",
            unit="stttt",
            domain="stttt.example.gov.vn",
        )
        s.commit()
    assert new.mailbox.address == ADDRESS
    return new.one_time_password


@dataclass
class Server:
    url: str
    health: dict[str, Any]
    client: Callable[[], httpx.AsyncClient]
    monitor: Callable[[], httpx.AsyncClient]


@pytest.fixture
async def server(
    sessions: sessionmaker[Session], tls_files: tuple[Path, Path]
) -> AsyncIterator[Server]:
    cert, key = tls_files
    health: dict[str, Any] = {"status": "ok", "dovecot": "ok"}

    async def check() -> dict[str, Any]:
        return dict(health)

    registry = CollectorRegistry()
    app = make_app(
        sessions=sessions,
        password_cfg=CFG,
        lockout=Lockout(THRESHOLD, 60, 600),
        registry=registry,
    )
    monitor = await start_http(
        make_monitoring_app(health=check, registry=registry), "127.0.0.1", 0, None
    )
    monitor_url = f"http://127.0.0.1:{monitor.address[1]}"
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    listener: HttpListener = await start_http(app, "127.0.0.1", 0, server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{listener.address[1]}"
    try:
        yield Server(
            url,
            health,
            lambda: httpx.AsyncClient(base_url=url, verify=client_tls),
            lambda: httpx.AsyncClient(base_url=monitor_url),
        )
    finally:
        await listener.close()
        await monitor.close()


async def _form(client: httpx.AsyncClient) -> str:
    page = await client.get("/password")
    assert page.status_code == 200
    assert "Đổi mật khẩu" in page.text and "<script" not in page.text
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert token is not None
    return token.group(1)


def _fields(csrf: str, current: str, new: str = NEW, repeat: str | None = None) -> dict[str, str]:
    return {
        "csrf": csrf,
        "address": ADDRESS,
        "current": current,
        "new1": new,
        "new2": new if repeat is None else repeat,
    }


def _mailbox(sessions: sessionmaker[Session]) -> Mailbox:
    with sessions() as s:
        return s.scalars(select(Mailbox).where(Mailbox.address == ADDRESS)).one()


async def test_change_with_one_time_password_clears_must_change(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        csrf = await _form(client)
        cookie = client.cookies.get("__Host-mailsvc-csrf")
        assert cookie
        response = await client.post("/password", data=_fields(csrf, one_time))
    assert response.status_code == 200, response.text
    assert "Đã đổi mật khẩu" in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    box = _mailbox(sessions)
    assert not box.must_change and box.password_expires_at is None
    assert verify_password(box.password_hash, NEW)
    assert not verify_password(box.password_hash, one_time)
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None
        assert (entry.actor, entry.action, entry.target) == (
            ADDRESS,
            "mailbox.change-password",
            ADDRESS,
        )
    # The one-time password is spent; the new one now works as the "current" one.
    async with server.client() as client:
        csrf = await _form(client)
        reused = await client.post("/password", data=_fields(csrf, one_time, "Other-Pass-2025"))
        assert reused.status_code == 403
        again = await client.post("/password", data=_fields(csrf, NEW, "Other-Pass-2025"))
        assert again.status_code == 200
    assert verify_password(_mailbox(sessions).password_hash, "Other-Pass-2025")


async def test_csrf_is_enforced(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        missing = await client.post("/password", data=_fields("", one_time))
        assert missing.status_code == 403 and "CSRF" in missing.text
        csrf = await _form(client)
    # A token from one browser is worthless with another browser's cookie.
    async with server.client() as other:
        await _form(other)
        stolen = await other.post("/password", data=_fields(csrf, one_time))
        assert stolen.status_code == 403
    # Without any cookie.
    async with server.client() as bare:
        no_cookie = await bare.post("/password", data=_fields(csrf, one_time))
        assert no_cookie.status_code == 403
    assert _mailbox(sessions).must_change


async def test_wrong_one_time_password_is_refused(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        csrf = await _form(client)
        wrong = await client.post("/password", data=_fields(csrf, "wrong-" + one_time))
        assert wrong.status_code == 403
        assert "Sai địa chỉ thư hoặc mật khẩu" in wrong.text
        unknown = await client.post(
            "/password", data={**_fields(csrf, one_time), "address": "nobody@stttt.example.gov.vn"}
        )
        assert unknown.status_code == 403 and "Sai địa chỉ thư hoặc mật khẩu" in unknown.text
    box = _mailbox(sessions)
    assert box.must_change and verify_password(box.password_hash, one_time)
    with sessions() as s:
        row = s.scalars(
            select(AuthFailure).where(
                AuthFailure.account == ADDRESS, AuthFailure.client_ip == "127.0.0.1"
            )
        ).one()
        assert row.failures == 1


async def test_new_password_rules(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        csrf = await _form(client)
        mismatch = await client.post("/password", data=_fields(csrf, one_time, NEW, NEW + "x"))
        assert mismatch.status_code == 400 and "không khớp" in mismatch.text
        weak = await client.post("/password", data=_fields(csrf, one_time, "abc"))
        assert weak.status_code == 400 and "at least 12 characters" in weak.text
        named = await client.post("/password", data=_fields(csrf, one_time, "annv.stttt-X-2024"))
        assert named.status_code == 400 and "mailbox name" in named.text
    assert _mailbox(sessions).must_change


async def test_expired_one_time_password_is_refused(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    with sessions() as s:
        s.execute(
            update(Mailbox)
            .where(Mailbox.address == ADDRESS)
            .values(password_expires_at=utcnow() - timedelta(minutes=1))
        )
        s.commit()
    async with server.client() as client:
        csrf = await _form(client)
        expired = await client.post("/password", data=_fields(csrf, one_time))
    assert expired.status_code == 403 and "hết hạn" in expired.text
    assert _mailbox(sessions).must_change


async def test_rate_limit_locks_out_after_repeated_failures(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        csrf = await _form(client)
        statuses = []
        for _ in range(THRESHOLD):
            r = await client.post("/password", data=_fields(csrf, "Wrong-Password-1"))
            statuses.append(r.status_code)
        assert statuses == [403] * (THRESHOLD - 1) + [429]
        # Locked: even the right password is not tried.
        locked = await client.post("/password", data=_fields(csrf, one_time))
        assert locked.status_code == 429
        assert 0 < int(locked.headers["Retry-After"]) <= 60
        assert "thử lại sau" in locked.text
    assert _mailbox(sessions).must_change


async def test_rate_limit_per_client_across_accounts(
    server: Server, sessions: sessionmaker[Session], one_time: str
) -> None:
    async with server.client() as client:
        csrf = await _form(client)
        last = None
        for n in range(THRESHOLD * 4):
            last = await client.post(
                "/password",
                data={**_fields(csrf, "Wrong-Password-1"), "address": f"u{n}@x.example.vn"},
            )
        assert last is not None and last.status_code == 429
        # This client address is now locked for every account, including a real one.
        blocked = await client.post("/password", data=_fields(csrf, one_time))
        assert blocked.status_code == 429
    assert _mailbox(sessions).must_change


async def test_healthz_and_metrics(server: Server, one_time: str) -> None:
    async with server.monitor() as monitor, server.client() as client:
        ok = await monitor.get("/healthz")
        assert ok.status_code == 200 and ok.json() == {"status": "ok", "dovecot": "ok"}
        server.health["status"] = "down"
        down = await monitor.get("/healthz")
        assert down.status_code == 503 and down.json()["status"] == "down"
        # The people's HTTPS listener does not serve monitoring.
        assert (await client.get("/healthz")).status_code == 404
        assert (await client.get("/metrics")).status_code == 404
        csrf = await _form(client)
        await client.post("/password", data=_fields(csrf, "Wrong-Password-1"))
        metrics = await monitor.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'mailsvc_password_page_attempts_total{result="rejected"} 1.0' in metrics.text


async def test_plain_http_is_not_served(server: Server) -> None:
    plain = server.url.replace("https://", "http://")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(plain + "/password")
