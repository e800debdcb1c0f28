"""SMTP rules end to end: real smtplib/imaplib clients against a running mailsvc + Dovecot."""

from __future__ import annotations

import asyncio
import email
import logging
import smtplib
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default
from email.utils import make_msgid

import pytest
from sqlalchemy import select, update

from mailsvc.db.models import AuthFailure, MessageRecord
from tests.e2e.conftest import DOMAIN, HOSTNAME, PASSWORD, RunningServer, client_tls, wait_for

CLERK = f"vanthu@{DOMAIN}"
OFFICIAL = f"annv.stttt@{DOMAIN}"


def make_message(
    sender: str,
    to: str,
    subject: str = "Thông báo lịch họp",
    body: str = "Kính gửi.",
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="sender.example.vn")
    msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def send(
    server: RunningServer,
    msg: EmailMessage,
    sender: str,
    rcpts: list[str],
    listener: str = "smtp",
    login: tuple[str, str] | None = None,
) -> dict[str, tuple[int, bytes]]:
    with server.smtp(listener) as client:
        client.ehlo("client.example.vn")
        if listener == "submission":
            client.starttls(context=client_tls())
            client.ehlo("client.example.vn")
        if login:
            client.login(*login)
        return client.sendmail(sender, rcpts, msg.as_bytes(policy=SMTP_POLICY))


def fetch_inbox(server: RunningServer, user: str, folder: str = "INBOX") -> list[bytes]:
    client = server.imap(user)
    try:
        typ, _ = client.select(folder, readonly=True)
        assert typ == "OK"
        typ, data = client.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        out = []
        for uid in uids:
            typ, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            out.append(parts[0][1])
        return out
    finally:
        client.logout()


async def test_inbound_message_is_delivered_with_trace_headers(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    msg = make_message(
        "cv@sender.example.vn",
        CLERK,
        extra_headers={
            "Authentication-Results": f"{HOSTNAME}; dkim=pass header.d=forged.example",
        },
    )
    msg["Authentication-Results"] = "other.example.vn; spf=pass"
    msg["X-Mailsvc-Register-Number"] = "999/2026"  # forged: only we may say this
    refused = await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
    assert refused == {}
    messages = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert len(messages) == 1
    delivered = messages[0]
    header_text = delivered.split(b"\r\n\r\n", 1)[0].decode()
    assert header_text.startswith(
        "Return-Path: <cv@sender.example.vn>\r\n"
        "Received: from client.example.vn ([127.0.0.1]) by " + HOSTNAME
    )
    assert f"Authentication-Results: {HOSTNAME};" in header_text
    assert "forged.example" not in header_text  # the forged result claiming our name is gone
    assert "other.example.vn; spf=pass" in header_text  # others' results are kept
    assert "X-Mailsvc-Queue-Id:" in header_text
    assert "999/2026" not in header_text

    def delivered_row() -> MessageRecord | None:
        with server.sessions() as session:
            row = session.scalars(select(MessageRecord)).one()
            return row if row.state == "delivered" else None

    await wait_for(lambda: delivered_row() is not None)  # the mark follows the 250
    row = delivered_row()
    assert row is not None and row.recipient == CLERK
    # The original body arrives byte for byte.
    original = server.app.blobs.get(row.sha256)
    assert delivered.endswith(original.split(b"\r\n\r\n", 1)[1])


async def test_unknown_recipient_and_relay_are_refused_at_rcpt(server: RunningServer) -> None:
    def dialogue() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with server.smtp() as client:
            client.ehlo("client.example.vn")
            client.mail("cv@sender.example.vn")
            unknown = client.rcpt(f"nobody@{DOMAIN}")
            relay = client.rcpt("someone@gmail.com")
            return unknown, relay

    unknown, relay = await asyncio.to_thread(dialogue)
    assert unknown[0] == 550 and b"5.1.1" in unknown[1]
    assert relay[0] == 554 and b"5.7.1" in relay[1] and b"relay" in relay[1]


async def test_disabled_mailbox_refused(server: RunningServer) -> None:
    server.add_mailbox(CLERK, enabled=False)

    def dialogue() -> tuple[int, bytes]:
        with server.smtp() as client:
            client.ehlo("x.example.vn")
            client.mail("cv@sender.example.vn")
            return client.rcpt(CLERK)

    code, text = await asyncio.to_thread(dialogue)
    assert code == 550 and b"5.2.1" in text


async def test_size_is_advertised_and_enforced(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    limit = server.app.settings.smtp.max_message_size

    def dialogue() -> tuple[str, tuple[int, bytes]]:
        with server.smtp() as client:
            client.ehlo("x.example.vn")
            advertised = client.esmtp_features.get("size", "")
            code, text = client.mail("cv@sender.example.vn", [f"SIZE={limit + 1}"])
            return advertised, (code, text)

    advertised, (code, _) = await asyncio.to_thread(dialogue)
    assert advertised == str(limit)
    assert code == 552

    def oversized_data() -> tuple[int, bytes]:
        # Without a SIZE declaration the limit is enforced on the data itself.
        with server.smtp() as client:
            client.ehlo("x.example.vn")
            client.mail("cv@sender.example.vn")
            client.rcpt(CLERK)
            line = b"y" * 900 + b"\r\n"
            client.putcmd("DATA")
            client.getreply()
            client.send(b"Subject: big\r\n\r\n" + line * (limit // len(line) + 10) + b".\r\n")
            return client.getreply()

    code, _ = await asyncio.to_thread(oversized_data)
    assert code == 552


async def test_submission_requires_tls_and_auth_and_owned_sender(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.add_mailbox(CLERK)
    server.add_mailbox(OFFICIAL, role="official")

    def no_tls_auth() -> tuple[int, bytes]:
        with server.smtp("submission") as client:
            client.ehlo("x.example.vn")
            return client.docmd("AUTH", "PLAIN AGFubnYAeA==")

    code, _ = await asyncio.to_thread(no_tls_auth)
    assert code == 530 or code == 538  # STARTTLS required first

    def no_auth_mail() -> tuple[int, bytes]:
        with server.smtp("submission") as client:
            client.ehlo("x.example.vn")
            client.starttls(context=client_tls())
            client.ehlo("x.example.vn")
            return client.mail(OFFICIAL)

    code, text = await asyncio.to_thread(no_auth_mail)
    assert code == 530 and b"5.7.0" in text

    # Authenticated: own address accepted, someone else's refused (envelope and From:).
    ok = make_message(OFFICIAL, CLERK)
    assert (
        await asyncio.to_thread(
            send, server, ok, OFFICIAL, [CLERK], "submission", (OFFICIAL, PASSWORD)
        )
        == {}
    )
    with pytest.raises(smtplib.SMTPSenderRefused) as sender_info:
        await asyncio.to_thread(
            send, server, ok, CLERK, [CLERK], "submission", (OFFICIAL, PASSWORD)
        )
    assert sender_info.value.smtp_code == 553
    forged_from = make_message(CLERK, CLERK)
    with pytest.raises(smtplib.SMTPDataError) as from_info:
        await asyncio.to_thread(
            send, server, forged_from, OFFICIAL, [CLERK], "submission", (OFFICIAL, PASSWORD)
        )
    assert from_info.value.smtp_code == 553
    # aiosmtpd's deprecated login_data is neither read (a warning at every command) nor
    # reported at AUTH: a logged-in session writes no such line.
    assert not [r for r in caplog.records if "login_data" in r.getMessage()]
    # Implicit TLS port works the same way.
    again = make_message(OFFICIAL, CLERK)
    assert (
        await asyncio.to_thread(
            send, server, again, OFFICIAL, [CLERK], "submissions", (OFFICIAL, PASSWORD)
        )
        == {}
    )
    assert len(await asyncio.to_thread(fetch_inbox, server, CLERK)) == 2


async def test_failed_auth_locks_out_with_backoff_and_is_recorded(server: RunningServer) -> None:
    server.add_mailbox(OFFICIAL, role="official")
    threshold = server.app.settings.smtp.auth_lockout_threshold

    def attempt(password: str) -> int:
        with server.smtp("submissions") as client:
            client.ehlo("x.example.vn")
            client.user, client.password = OFFICIAL, password
            try:
                client.auth("PLAIN", client.auth_plain)  # one mechanism: one attempt
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code
            return 235

    codes = [await asyncio.to_thread(attempt, "wrong-password") for _ in range(threshold)]
    assert codes[:-1] == [535] * (threshold - 1)
    assert codes[-1] == 454  # this failure triggered the lock-out
    # Even the right password is refused while locked.
    assert await asyncio.to_thread(attempt, PASSWORD) == 454
    with server.sessions() as session:
        row = session.scalars(select(AuthFailure)).one()
        assert row.account == OFFICIAL and row.lockouts == 1 and row.locked_until is not None


async def test_one_time_password_cannot_send(server: RunningServer) -> None:
    server.add_mailbox(OFFICIAL, role="official", must_change=True)

    def attempt() -> tuple[int, bytes]:
        with server.smtp("submissions") as client:
            client.ehlo("x.example.vn")
            try:
                client.login(OFFICIAL, PASSWORD)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error
            return 235, b""

    code, text = await asyncio.to_thread(attempt)
    assert code == 535 and b"/password" in text


async def test_same_message_twice_is_delivered_once(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    msg = make_message("cv@sender.example.vn", CLERK)
    await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
    await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
    assert len(await asyncio.to_thread(fetch_inbox, server, CLERK)) == 1


async def test_lmtp_outage_gives_451_and_repair_delivers(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    msg = make_message("cv@sender.example.vn", CLERK)
    await server.app.dovecot.stop()
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK])
    assert info.value.smtp_code == 451
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord.state)).all() == ["stored"]
    await server.app.dovecot.start()  # Dovecot back: the stored row is delivered

    def delivered() -> bool:
        with server.sessions() as session:
            return session.scalars(select(MessageRecord.state)).all() == ["delivered"]

    await wait_for(delivered, timeout=30)
    # The client's retry is recognised: no second copy.
    assert await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK]) == {}
    assert len(await asyncio.to_thread(fetch_inbox, server, CLERK)) == 1


async def test_a_delivered_mark_never_written_is_repaired_without_a_second_copy(
    server: RunningServer,
) -> None:
    """The 250 follows the LMTP delivery, not the row's 'delivered' mark (written just
    after, with the other copies delivered meanwhile). Should the mark never be written
    (serve killed, the database gone for a moment), the row stays 'stored' with its copy
    in the mailbox: repair finds the copy and marks the row, and the sender's retry is
    recognised; one copy either way."""
    server.add_mailbox(CLERK)
    msg = make_message("cv@sender.example.vn", CLERK)
    assert await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK]) == {}

    def states() -> list[str]:
        with server.sessions() as session:
            return list(session.scalars(select(MessageRecord.state)))

    await wait_for(lambda: states() == ["delivered"])
    with server.sessions() as session:  # as if the mark had been lost
        session.execute(update(MessageRecord).values(state="stored", delivered_at=None))
        session.commit()
    assert await server.app.acceptance.repair() == 1
    assert states() == ["delivered"]
    assert len(await asyncio.to_thread(fetch_inbox, server, CLERK)) == 1
    with server.sessions() as session:
        session.execute(update(MessageRecord).values(state="stored", delivered_at=None))
        session.commit()
    assert await asyncio.to_thread(send, server, msg, "cv@sender.example.vn", [CLERK]) == {}
    await wait_for(lambda: states() == ["delivered"])
    assert len(await asyncio.to_thread(fetch_inbox, server, CLERK)) == 1


async def test_bad_input_gets_clear_errors_and_server_survives(server: RunningServer) -> None:
    server.add_mailbox(CLERK)

    def dialogue() -> list[tuple[int, bytes]]:
        with server.smtp() as client:
            replies = [client.docmd("MAIL", "FROM:<<<broken")]
            replies.append(client.docmd("EHLO", "x.example.vn"))
            replies.append(client.docmd("RCPT", f"TO:<{CLERK}>"))  # before MAIL
            replies.append(client.docmd("FOO", "bar"))
            replies.append(client.docmd("MAIL", "FROM:<cv@sender.example.vn>"))
            replies.append(client.docmd("RCPT", f"TO:<{CLERK}>"))
            replies.append(client.docmd("DATA"))
            # Broken MIME and raw 8-bit headers (a From: without a mailbox is refused:
            # tests/e2e/test_security.py).
            client.send(
                b"From: cv@sender.example.vn\r\nSubject: \xff\xfe =?utf-8?B?invalid\r\n"
                b'Content-Type: multipart/mixed; boundary="nope"\r\n\r\n--nope\r\n'
                b"Content-Type: text/plain\r\n\r\nkhong dong boundary\r\n.\r\n"
            )
            replies.append(client.getreply())
            return replies

    replies = await asyncio.to_thread(dialogue)
    codes = [code for code, _ in replies]
    assert codes[0] == 503 or codes[0] // 100 == 5  # MAIL before EHLO / bad syntax
    assert codes[2] == 503  # RCPT before MAIL
    assert codes[3] == 500  # unknown command
    assert codes[6] == 354
    assert codes[7] == 250  # broken MIME is still mail: accepted and stored as received
    # The server still answers new clients.
    ok = make_message("cv@sender.example.vn", CLERK)
    assert await asyncio.to_thread(send, server, ok, "cv@sender.example.vn", [CLERK]) == {}
    await wait_for(lambda: server.app.inflight.count == 0)


async def test_per_ip_connection_and_message_rate_limits(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    server.app.rate.max_connections = 2
    server.app.rate.max_messages = 1

    def dialogue() -> tuple[int, tuple[int, bytes], tuple[int, bytes]]:
        first, second = server.smtp(), server.smtp()
        try:
            try:
                server.smtp().close()
                code = 220
            except smtplib.SMTPConnectError as exc:  # the greeting is the refusal
                code = exc.smtp_code
            first.ehlo("x.example.vn")
            ok = first.mail("cv@sender.example.vn")
            first.rset()
            limited = first.mail("cv@sender.example.vn")
            return code, ok, limited
        finally:
            first.close()
            second.close()

    refused, ok, limited = await asyncio.to_thread(dialogue)
    assert refused == 421
    assert ok[0] == 250
    assert limited[0] == 451 and b"4.7.1" in limited[1]


async def test_pipelined_commands_after_the_data_and_a_dropped_data(
    server: RunningServer,
) -> None:
    """DATA is read in large pieces: what a pipelining client sends after the ``.`` line
    in the same write is still answered command by command, dot-stuffed lines come out
    unstuffed, and a client that hangs up in the middle of DATA leaves nothing behind."""
    server.add_mailbox(CLERK)
    first = make_message("cv@sender.example.vn", CLERK, body=".dòng bắt đầu bằng dấu chấm\n.\n")
    second = make_message("cv@sender.example.vn", CLERK, subject="Thư thứ hai")
    dropped = make_message("cv@sender.example.vn", CLERK, subject="Thư bị ngắt")
    envelope = b"MAIL FROM:<cv@sender.example.vn>\r\nRCPT TO:<" + CLERK.encode() + b">\r\nDATA\r\n"

    def stuffed(msg: EmailMessage) -> bytes:
        lines = msg.as_bytes(policy=SMTP_POLICY).split(b"\r\n")
        return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)

    def dialogue() -> list[int]:
        codes = []
        with server.smtp() as client:
            codes.append(client.ehlo("client.example.vn")[0])
            client.send(envelope)
            codes += [client.getreply()[0] for _ in range(3)]
            # the end of the first message and the whole next transaction in one write
            client.send(stuffed(first) + b".\r\n" + envelope)
            codes += [client.getreply()[0] for _ in range(4)]
            client.send(stuffed(second) + b".\r\n")
            codes.append(client.getreply()[0])
        with server.smtp() as client:
            client.ehlo("client.example.vn")
            client.mail("cv@sender.example.vn")
            client.rcpt(CLERK)
            codes.append(client.docmd("DATA")[0])
            raw = dropped.as_bytes(policy=SMTP_POLICY)
            client.send(raw[: len(raw) // 2])
            # hang up in the middle of the message: close() shuts the socket and the
            # reply file (sock.close() alone left the descriptor open, and the `with`
            # then sent QUIT into the DATA: the server waited out its 30 s timeout)
            client.close()
        return codes

    codes = await asyncio.to_thread(dialogue)
    assert codes == [250, 250, 250, 354, 250, 250, 250, 354, 250, 354]
    await wait_for(lambda: server.app.inflight.count == 0)
    inbox = [
        email.message_from_bytes(raw, policy=default)
        for raw in await asyncio.to_thread(fetch_inbox, server, CLERK)
    ]
    ids = [m["Message-ID"] for m in inbox]
    assert ids.count(first["Message-ID"]) == 1 and ids.count(second["Message-ID"]) == 1
    assert dropped["Message-ID"] not in ids
    (received,) = [m for m in inbox if m["Message-ID"] == first["Message-ID"]]
    assert received.get_content().splitlines() == [".dòng bắt đầu bằng dấu chấm", "."]
    with server.sessions() as session:
        stored = session.scalars(
            select(MessageRecord.id).where(MessageRecord.message_id == dropped["Message-ID"])
        ).all()
    assert stored == []
