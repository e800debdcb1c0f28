"""Officials send to other agencies from their mail client (issue: the outgoing half).

A logged-in submission to a recipient at another server is checked, committed to the
durable outbound queue before the 250, and delivered over verified STARTTLS along the
route pinned in the agency directory, DKIM-signed, one transaction for both recipients
at that domain. Classified content never leaves; a stolen password cannot spam; a
directory agency without STARTTLS gets nothing in plain text; an unknown mailbox there
gives the official a Vietnamese RFC 3464 bounce."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select

from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.outbound.dkim import generate_private_key, public_key_value
from mailsvc.outbound.models import OutboundMessage
from mailsvc.passwords import hash_password
from tests.e2e.conftest import (
    DOMAIN,
    PASSWORD,
    RunningServer,
    prepare_home,
    running_server,
    seed,
    wait_for,
)
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send
from tests.remote_sink import RemoteSink, port_of, sink_tls, start_remote_sink

REMOTE_DOMAIN = "stc.thunghiem.gov.vn"
REMOTE_CODE = "000.00.02.H99"
OFFICIAL = f"annv.stttt@{DOMAIN}"
ADMIN = f"quantri@{DOMAIN}"
CLERK_B = f"vanthu@{REMOTE_DOMAIN}"
LEADER_B = f"giamdoc@{REMOTE_DOMAIN}"

OUTBOUND = """
[outbound]
tls_ca_file = "{ca}"
first_retry_minutes = 0.002
max_retry_minutes = 0.004
poll_seconds = 0.1
max_remote_recipients_per_hour = {limit}
"""


@asynccontextmanager
async def _server(
    home: Path, db_url: str, ca: Path, route: str, limit: int = 50
) -> AsyncIterator[RunningServer]:
    prepare_home(home, db_url, extra=OUTBOUND.format(ca=ca, limit=limit))
    generate_private_key(home / "dkim" / "private.pem")
    seed(
        db_url,
        Agency(code=REMOTE_CODE, name="Sở Tài chính", domains=[REMOTE_DOMAIN], route=route),
    )
    async with running_server(home) as running:
        with running.app.sessions.begin() as session:
            for address, role in ((OFFICIAL, "official"), (ADMIN, "admin")):
                session.add(
                    Mailbox(
                        address=address,
                        role=role,
                        password_hash=hash_password(PASSWORD, running.app.settings.password),
                        must_change=False,
                    )
                )
        yield running


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[tuple[RemoteSink, int, Path]]:
    sink = RemoteSink()
    tls, cert = sink_tls(tmp_path)
    server = await start_remote_sink(sink, tls)
    try:
        yield sink, port_of(server), cert
    finally:
        server.close()
        await server.wait_closed()


def _submit(server: RunningServer, rcpts: list[str], **kw: str) -> dict[str, tuple[int, bytes]]:
    msg = make_message(OFFICIAL, ", ".join(rcpts), **kw)
    return send(server, msg, OFFICIAL, rcpts, "submission", (OFFICIAL, PASSWORD))


def _rows(server: RunningServer) -> list[OutboundMessage]:
    with server.sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


async def test_official_sends_to_another_agency_over_verified_starttls_with_dkim(
    service_home: Path, db_url: str, remote: tuple[RemoteSink, int, Path]
) -> None:
    sink, port, cert = remote
    async with _server(service_home, db_url, cert, f"127.0.0.1:{port}") as server:
        refused = await asyncio.to_thread(
            _submit, server, [CLERK_B, LEADER_B], subject="Kế hoạch chuyển đổi số năm 2027"
        )
        assert refused == {}
        # Both recipients were queued before the 250 (the rows exist, whatever their state).
        rows = _rows(server)
        assert sorted(r.recipient for r in rows) == [LEADER_B, CLERK_B]
        assert {r.kind for r in rows} == {"submission"} and rows[0].sender == OFFICIAL
        # The message's rows for them say it left; no delivered copy's header block is
        # kept for a copy that is not delivered here.
        with server.sessions() as session:
            records = session.scalars(select(MessageRecord)).all()
        assert {(r.recipient, r.state, r.headers, r.flags) for r in records} == {
            (CLERK_B, "relayed", "", ""),
            (LEADER_B, "relayed", "", ""),
        }
        await wait_for(lambda: len(sink.transactions) == 1)
        await wait_for(lambda: {r.state for r in _rows(server)} == {"sent"})
        [tx] = sink.transactions
        # One transaction for both recipients at the domain, over STARTTLS.
        assert sorted(tx.rcpt_tos) == sorted([CLERK_B, LEADER_B])
        assert tx.tls and tx.mail_from == OFFICIAL
        assert tx.content.startswith(b"DKIM-Signature:")
        assert b"\r\nReceived: from client.example.vn" in tx.content
        assert b"X-Mailsvc-" not in tx.content
        # The DKIM signature verifies with the published key (`mailsvc dkim show-dns`).
        txt = public_key_value((service_home / "dkim" / "private.pem").read_bytes())

        published = {f"mailsvc._domainkey.{DOMAIN}.".encode(): txt.encode()}
        assert dkim.verify(tx.content, dnsfunc=lambda name, timeout=5: published[name])


async def test_classified_document_never_leaves_and_admins_are_alerted(
    service_home: Path, db_url: str, remote: tuple[RemoteSink, int, Path]
) -> None:
    sink, port, cert = remote
    async with _server(service_home, db_url, cert, f"127.0.0.1:{port}") as server:
        with pytest.raises(smtplib.SMTPDataError) as info:
            await asyncio.to_thread(
                _submit,
                server,
                [CLERK_B],
                subject="Báo cáo quý IV",
                body="ỦY BAN NHÂN DÂN TỈNH\n\nTỐI MẬT\n\nBáo cáo tình hình an ninh quý IV.\n",
            )
        assert info.value.smtp_code == 554 and b"classified" in info.value.smtp_error
        await wait_for(lambda: ("alert-classified", ADMIN) in server.app.mailer.sent)
        assert [r.kind for r in _rows(server)] == ["alert-classified", "notice-02"] or [
            r.kind for r in _rows(server)
        ] == ["notice-02", "alert-classified"]
        assert sink.transactions == []


async def test_remote_recipients_per_account_are_limited(
    service_home: Path, db_url: str, remote: tuple[RemoteSink, int, Path]
) -> None:
    sink, port, cert = remote
    async with _server(service_home, db_url, cert, f"127.0.0.1:{port}", limit=2) as server:
        assert await asyncio.to_thread(_submit, server, [CLERK_B, LEADER_B]) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            await asyncio.to_thread(_submit, server, [f"ketoan@{REMOTE_DOMAIN}"])
        [(code, text)] = info.value.recipients.values()
        assert code == 451 and b"other servers" in text
        await wait_for(lambda: len(sink.recipients) == 2)


async def test_directory_agency_without_starttls_gets_nothing_in_plain_text(
    service_home: Path, db_url: str, tmp_path: Path
) -> None:
    sink = RemoteSink()
    plain = await start_remote_sink(sink, None)  # offers no STARTTLS
    _, cert = sink_tls(tmp_path)
    try:
        async with _server(service_home, db_url, cert, f"127.0.0.1:{port_of(plain)}") as server:
            assert await asyncio.to_thread(_submit, server, [CLERK_B]) == {}
            await wait_for(lambda: _rows(server)[0].attempts >= 2)
            [row] = _rows(server)
            assert row.state == "queued" and "does not offer STARTTLS" in row.last_error
    finally:
        plain.close()
        await plain.wait_closed()
    assert sink.transactions == []


async def test_unknown_mailbox_at_the_other_agency_bounces_in_vietnamese(
    service_home: Path, db_url: str, remote: tuple[RemoteSink, int, Path]
) -> None:
    sink, port, cert = remote
    nobody = f"khongco@{REMOTE_DOMAIN}"
    sink.answers[nobody] = "550 5.1.1 <khongco@stc.thunghiem.gov.vn>: user unknown"
    async with _server(service_home, db_url, cert, f"127.0.0.1:{port}") as server:
        assert (
            await asyncio.to_thread(_submit, server, [nobody, CLERK_B], subject="Giấy mời họp")
            == {}
        )
        await wait_for(lambda: ("dsn-failure", OFFICIAL) in server.app.mailer.sent)
        assert sink.recipients == [CLERK_B]
        [bounce] = await asyncio.to_thread(fetch_inbox, server, OFFICIAL)
        mail = message_from_bytes(bounce, policy=default_policy)
        assert mail.get_content_type() == "multipart/report"
        assert mail.get_param("report-type") == "delivery-status"
        assert mail["Auto-Submitted"] == "auto-replied"
        assert str(mail["Subject"]).startswith("Thư không gửi được: Giấy mời họp")
        text, status, headers = mail.iter_parts()
        body = text.get_content()
        assert "KHÔNG gửi được thư" in body and "Địa chỉ người nhận không tồn tại" in body
        assert status.get_content_type() == "message/delivery-status"
        report = status.as_string()
        assert f"Final-Recipient: rfc822; {nobody}" in report
        assert "Action: failed" in report and "Status: 5.1.1" in report
        assert headers.get_content_type() == "text/rfc822-headers"
        # The bounce came from the null sender: nobody bounces a bounce.
        with server.sessions() as session:
            [dsn] = session.scalars(
                select(OutboundMessage).where(OutboundMessage.kind == "dsn-failure")
            ).all()
            assert dsn.sender == ""
