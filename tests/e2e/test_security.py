"""Issue 10's attacks on the SMTP/IMAP doors, driven through a running mailsvc + Dovecot
with real clients (smtplib, imaplib): header spoofing, hostile address headers, HELO
injection, the null sender on submission, login timing and the shared lock-out."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mailsvc.db.models import AuthFailure, MessageRecord
from tests.e2e.conftest import (
    DOMAIN,
    PASSWORD,
    RunningServer,
    client_tls,
    prepare_home,
    running_server,
    seed,
    wait_for,
)

CLERK = f"vanthu@{DOMAIN}"
OFFICIAL = f"annv.stttt@{DOMAIN}"
BOSS = f"giamdoc@{DOMAIN}"
OUTSIDER = "cv@sender.example.vn"


def raw_message(
    from_lines: str, to: str = CLERK, extra: str = "", body: str = "Kính gửi."
) -> bytes:
    """A message whose header section is given literally (the trick lives there)."""
    text = (
        f"{from_lines}"
        f"To: {to}\r\n"
        "Subject: =?utf-8?b?VGjDtG5nIGLDoW8=?=\r\n"
        "Date: Sat, 21 Nov 2026 08:00:00 +0700\r\n"
        "Message-ID: <sec-test@sender.example.vn>\r\n"
        f"{extra}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    )
    return text.encode("utf-8")


def deliver(
    server: RunningServer,
    raw: bytes,
    *,
    sender: str,
    rcpt: str = CLERK,
    listener: str = "smtp",
    login: str | None = None,
) -> tuple[int, bytes]:
    """One message through a fresh session: the DATA reply (code, text)."""
    with server.smtp(listener) as client:
        client.ehlo("client.example.vn")
        if listener == "submission":
            client.starttls(context=client_tls())
            client.ehlo("client.example.vn")
        if login:
            client.login(login, PASSWORD)
        code, text = client.mail(sender)
        assert code == 250, text
        code, text = client.rcpt(rcpt)
        assert code == 250, text
        return client.data(raw)


async def submit(server: RunningServer, head: str) -> tuple[int, bytes]:
    """One message from the official, logged in on the submission port: the DATA reply."""
    return await asyncio.to_thread(
        deliver, server, raw_message(head), sender=OFFICIAL, listener="submission", login=OFFICIAL
    )


@pytest.fixture
async def mailboxes(server: RunningServer) -> RunningServer:
    for address in (CLERK, OFFICIAL, BOSS):
        server.add_mailbox(address)
    return server


# --- 10.3 From-header spoofing -------------------------------------------------------


@pytest.mark.parametrize("listener", ["smtp", "submission"])
async def test_space_before_colon_is_refused_on_every_port(
    mailboxes: RunningServer, listener: str
) -> None:
    server = mailboxes
    login = OFFICIAL if listener == "submission" else None
    sender = OFFICIAL if login else OUTSIDER
    forged = raw_message(f"From: {sender}\r\nFrom : {BOSS}\r\n")
    code, text = await asyncio.to_thread(
        deliver, server, forged, sender=sender, listener=listener, login=login
    )
    assert code == 554 and b"white space between a header field name" in text
    # Any field, not only From (Python's parser would end the header section there).
    code, text = await asyncio.to_thread(
        deliver,
        server,
        raw_message(f"From: {sender}\r\n", extra="Subject : x\r\n"),
        sender=sender,
        listener=listener,
        login=login,
    )
    assert code == 554
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord.state)).all() in ([], ["refused"] * 2)


@pytest.mark.parametrize("listener", ["smtp", "submission"])
async def test_exactly_one_from_with_one_mailbox_on_every_port(
    mailboxes: RunningServer, listener: str
) -> None:
    server = mailboxes
    login = OFFICIAL if listener == "submission" else None
    sender = OFFICIAL if login else OUTSIDER
    cases = {
        f"From: {sender}, {BOSS}\r\n": b"exactly one mailbox",
        f"From: {sender}\r\nFrom: {BOSS}\r\n": b"exactly one From",
        f"Sender: {sender}\r\n": b"exactly one From",
    }
    for header, expected in cases.items():
        code, text = await asyncio.to_thread(
            deliver, server, raw_message(header), sender=sender, listener=listener, login=login
        )
        assert code == 554 and expected in text, (header, code, text)
    code, _ = await asyncio.to_thread(
        deliver,
        server,
        raw_message(f"From: Nguyễn Văn An <{sender}>\r\n"),
        sender=sender,
        listener=listener,
        login=login,
    )
    assert code == 250


async def test_display_name_showing_another_address_is_refused_on_submission(
    mailboxes: RunningServer,
) -> None:
    server = mailboxes
    for display in (f'"{BOSS}"', '"giamdoc＠sotttt.example.vn"', f'"Giám đốc ({BOSS})"'):
        code, text = await submit(server, f"From: {display} <{OFFICIAL}>\r\n")
        assert code == 553 and b"display name" in text, display
    # A comment is a display name too: IMAP's ENVELOPE (Dovecot) and mail clients show
    # "x@y (Name)" and "Name (note) <x@y>" with the comment as the sender's name.
    for field in (
        f"{OFFICIAL} ({BOSS})",
        f"Lanh ({BOSS}) dao <{OFFICIAL}>",
        f"{OFFICIAL} (=?utf-8?q?{BOSS.replace('@', '=40')}?=)",
        f"{OFFICIAL} (Giám đốc (({BOSS})))",
    ):
        code, text = await submit(server, f"From: {field}\r\n")
        assert code == 553 and b"display name" in text, field
    code, _ = await submit(server, f'From: "An ({OFFICIAL})" <{OFFICIAL}>\r\n')
    assert code == 250
    code, _ = await submit(server, f"From: {OFFICIAL} (Nguyễn Văn An, phòng Văn thư)\r\n")
    assert code == 250


async def test_a_sender_field_must_be_the_officials_own_on_submission(
    mailboxes: RunningServer,
) -> None:
    """Sender: is shown by mail clients ("X on behalf of Y"): an official may not name
    another mailbox there, nor show one as its display name."""
    server = mailboxes
    for field, expected in (
        (f"Giám đốc <{BOSS}>", b"Sender: header address not owned"),
        (f'"{BOSS}" <{OFFICIAL}>', b"display name"),
        (f"{OFFICIAL} ({BOSS})", b"display name"),
    ):
        code, text = await submit(server, f"From: {OFFICIAL}\r\nSender: {field}\r\n")
        assert code == 553 and expected in text, (field, code, text)
    code, _ = await submit(server, f"From: {OFFICIAL}\r\nSender: Nguyễn Văn An <{OFFICIAL}>\r\n")
    assert code == 250


async def test_resent_fields_must_be_the_officials_own_on_submission(
    mailboxes: RunningServer,
) -> None:
    """Resent-From:/Resent-Sender: (a message sent on again) say who sent it too: every
    one, in every resent block, must be the login's; a broken one is refused, not
    skipped. Incoming mail is not judged by them."""
    server = mailboxes
    for fields, refusal, expected in (
        (f"Resent-From: {BOSS}\r\n", 553, b"Resent-From: header address not owned"),
        (f"Resent-Sender: {BOSS}\r\n", 553, b"Resent-Sender: header address not owned"),
        (f"Resent-From: {OFFICIAL}\r\nResent-From: {BOSS}\r\n", 553, b"Resent-From: header"),
        (f'Resent-From: "{BOSS}" <{OFFICIAL}>\r\n', 553, b"Resent-From: display name"),
        ("Resent-From: <<<@@>\r\n", 554, b"address header field cannot be parsed"),
    ):
        code, text = await submit(server, f"From: {OFFICIAL}\r\n{fields}")
        assert code == refusal and expected in text, (fields, code, text)
    own = f"Resent-From: Nguyễn Văn An <{OFFICIAL}>\r\nResent-Sender: {OFFICIAL}\r\n"
    code, _ = await submit(server, f"From: {OFFICIAL}\r\n{own}")
    assert code == 250
    # from another server, a list's Resent-From: is no reason to refuse
    code, _ = await asyncio.to_thread(
        deliver,
        server,
        raw_message(f"From: {OUTSIDER}\r\nResent-From: <<<@@>\r\nResent-From: {BOSS}\r\n"),
        sender=OUTSIDER,
    )
    assert code == 250


async def test_an_envelope_sender_not_owned_gets_its_own_reply(mailboxes: RunningServer) -> None:
    """MAIL FROM someone else's address: the reply names the address and the envelope
    (it said "Sender: header address not owned", a constant defined twice)."""

    def mail_from() -> tuple[int, bytes]:
        with mailboxes.smtp("submission") as client:
            client.ehlo("client.example.vn")
            client.starttls(context=client_tls())
            client.login(OFFICIAL, PASSWORD)
            return client.mail(BOSS)

    code, text = await asyncio.to_thread(mail_from)
    assert code == 553
    assert text == f"5.7.1 <{BOSS}>: sender address not owned by authenticated user".encode()


# --- 10.4 hostile address headers --------------------------------------------------------


async def test_hostile_address_headers_get_a_definite_5xx(mailboxes: RunningServer) -> None:
    server = mailboxes
    folded = "From: " + "\r\n ".join(
        f'"Người gửi {i}" <a{i}@sender.example.vn>,' for i in range(80)
    )
    cases = {
        # SMTP lines stop at 1,000 octets: long values come folded.
        b"From: " + b"\r\n ".join([b"(" * 900] * 4) + b"cv@sender.example.vn": b"too large",
        b"From: " + b"\r\n ".join([b"(" * 750] * 2) + b"cv@sender.example.vn": (
            b"cannot be parsed"  # RecursionError in the email package
        ),
        f"From: nhom: {OUTSIDER}, {BOSS};".encode(): b"cannot be parsed",  # group syntax
        b"From: nhom:;": b"cannot be parsed",
        folded.encode(): b"too large",
        b"From: \xff\xfe broken": b"cannot be parsed",  # not UTF-8
    }
    for header, expected in cases.items():
        raw = raw_message("").replace(b"To:", header + b"\r\nTo:", 1)
        code, text = await asyncio.to_thread(deliver, server, raw, sender=OUTSIDER)
        assert code == 554 and expected in text, (header[:40], code, text)


async def test_noop_answered_while_a_hostile_header_is_processed(
    mailboxes: RunningServer,
) -> None:
    """A 200 KB folded From: must not stall other sessions (it used to be re-parsed on
    the event loop at every access: ~70 µs per byte, each time)."""
    server = mailboxes
    lines = [f'"Người gửi số {i}" <nguoigui{i}@sender.example.vn>,' for i in range(3500)]
    hostile = raw_message("From: " + "\r\n ".join(lines) + f"\r\n {OUTSIDER}\r\n")
    assert 180_000 < len(hostile) < 250_000  # under the 256 KiB header-section limit
    other = await asyncio.to_thread(server.smtp)
    await asyncio.to_thread(other.ehlo, "other.example.vn")
    outcome: dict[str, tuple[int, bytes]] = {}
    sending = threading.Thread(
        target=lambda: outcome.update(reply=deliver(server, hostile, sender=OUTSIDER))
    )
    sending.start()
    try:
        await wait_for(lambda: server.app.inflight.count > 0 or "reply" in outcome, 60)

        def noops() -> float:
            """NOOP after NOOP until the hostile message is answered: the longest wait."""
            worst = 0.0
            while "reply" not in outcome:
                started = time.monotonic()
                code, _ = other.noop()
                assert code == 250
                worst = max(worst, time.monotonic() - started)
            return worst

        worst = await asyncio.to_thread(noops)
        assert worst < 2.0, f"a NOOP waited {worst:.1f} s behind another session's header"
    finally:
        await asyncio.to_thread(sending.join)
        other.close()
    code, text = outcome["reply"]
    assert code == 554 and b"too large" in text


# --- 10.10 HELO injection ---------------------------------------------------------------


async def test_helo_with_control_characters_or_bad_syntax_is_refused(
    mailboxes: RunningServer,
) -> None:
    server = mailboxes

    def dialogue() -> list[tuple[int, bytes]]:
        with server.smtp() as client:
            replies = []
            for verb, name in (
                ("EHLO", "mx\rX-Injected: yes"),
                ("HELO", "mx\rX-Injected: yes"),
                ("EHLO", "mx\x00evil"),
                ("EHLO", "bad host name"),
                ("EHLO", "[999.1.1.1]"),
                ("EHLO", "[192.0.2.1]"),
                ("EHLO", "mx.example.vn"),
            ):
                client.send(f"{verb} {name}\r\n".encode())
                replies.append(client.getreply())
            return replies

    replies = await asyncio.to_thread(dialogue)
    assert [code for code, _ in replies] == [501, 501, 501, 501, 501, 250, 250]
    assert b"5.5.2" in replies[0][1]
    # The accepted name is what the trace header shows; a CR cannot get that far.
    code, _ = await asyncio.to_thread(
        deliver, server, raw_message(f"From: {OUTSIDER}\r\n"), sender=OUTSIDER
    )
    assert code == 250
    with server.sessions() as session:
        record = session.scalars(select(MessageRecord)).one()
        assert record.headers.startswith("Received: from client.example.vn ([127.0.0.1])")


# --- 10.12 the null sender on submission -------------------------------------------------


MDN = (
    "From: {sender}\r\nTo: {rcpt}\r\nSubject: Read: Thông báo\r\n"
    "Message-ID: <mdn-1@sotttt.example.vn>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n'
    "\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nĐã đọc.\r\n"
    "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
    "Final-Recipient: rfc822; {sender}\r\nOriginal-Message-ID: <orig@sotttt.example.vn>\r\n"
    "Disposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n"
)


async def test_null_sender_on_submission_is_for_reports(mailboxes: RunningServer) -> None:
    server = mailboxes

    def dialogue(raw: bytes) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with server.smtp("submission") as client:
            client.ehlo("client.example.vn")
            client.starttls(context=client_tls())
            client.ehlo("client.example.vn")
            client.login(OFFICIAL, PASSWORD)
            mail = client.docmd("MAIL", "FROM:<>")
            assert client.rcpt(CLERK)[0] == 250
            return mail, client.data(raw)

    mdn = MDN.format(sender=OFFICIAL, rcpt=CLERK).encode()
    mail, data = await asyncio.to_thread(dialogue, mdn)
    assert mail[0] == 250 and b"<<>>" not in mail[1]
    assert data[0] == 250
    mail, data = await asyncio.to_thread(dialogue, raw_message(f"From: {OFFICIAL}\r\n"))
    assert mail[0] == 250
    assert data[0] == 553 and b"null sender" in data[1]


# --- 10.6 account discovery by timing ----------------------------------------------------


async def test_auth_for_unknown_address_takes_as_long_as_a_wrong_password(
    service_home: Path, db_url: str
) -> None:
    prepare_home(service_home, db_url, extra="\n[smtp]\nauth_lockout_threshold = 1000\n")
    seed(db_url)
    async with running_server(service_home) as server:
        server.add_mailbox(OFFICIAL)

        def timings(rounds: int) -> tuple[list[float], list[float]]:
            """AUTH attempt after attempt, alternating the two logins (and which goes
            first) on two sessions, so whatever else loads the machine weighs on both."""
            logins = (OFFICIAL, f"khongco@{DOMAIN}")
            out: tuple[list[float], list[float]] = ([], [])
            clients = [server.smtp("submission") for _ in logins]
            try:
                for client in clients:
                    client.ehlo("client.example.vn")
                    client.starttls(context=client_tls())
                    client.ehlo("client.example.vn")
                for round_ in range(rounds):
                    order = list(zip(logins, clients, out, strict=True))
                    for login, client, samples in order[:: 1 if round_ % 2 else -1]:
                        token = base64.b64encode(f"\0{login}\0wrong-Password-1".encode())
                        started = time.perf_counter()
                        code, _ = client.docmd("AUTH", f"PLAIN {token.decode()}")
                        samples.append(time.perf_counter() - started)
                        assert code == 535
            finally:
                for client in clients:
                    client.close()
            return out

        known, unknown = await asyncio.to_thread(timings, 40)
    k, u = statistics.median(known), statistics.median(unknown)
    assert abs(k - u) / max(k, u) < 0.2, f"known {k * 1000:.1f} ms, unknown {u * 1000:.1f} ms"


# --- 10.5 one lock-out for SMTP, IMAP and the password page --------------------------------


def imap_login(server: RunningServer, user: str, password: str) -> str:
    host, port = server.addr("imap")
    client = imaplib.IMAP4(host, port, timeout=30)
    try:
        client.starttls(ssl_context=client_tls())
        try:
            client.login(user, password)
        except imaplib.IMAP4.error as exc:
            return f"NO {exc}"
        return "OK"
    finally:
        client.logout()


def smtp_auth(server: RunningServer, user: str, password: str) -> tuple[int, bytes]:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    with server.smtp("submission") as client:
        client.ehlo("client.example.vn")
        client.starttls(context=client_tls())
        client.ehlo("client.example.vn")
        return client.docmd("AUTH", f"PLAIN {token}")


async def test_smtp_lockout_also_locks_imap(mailboxes: RunningServer) -> None:
    server = mailboxes
    assert await asyncio.to_thread(imap_login, server, OFFICIAL, PASSWORD) == "OK"
    for _ in range(server.app.settings.smtp.auth_lockout_threshold):
        code, _ = await asyncio.to_thread(smtp_auth, server, OFFICIAL, "Sai-mat-khau-1")
    assert code == 454  # the last failure started the lock-out
    answer = await asyncio.to_thread(imap_login, server, OFFICIAL, PASSWORD)
    assert answer.startswith("NO") and "try again after" in answer
    # Another account is not affected.
    assert await asyncio.to_thread(imap_login, server, CLERK, PASSWORD) == "OK"


async def test_imap_failures_are_recorded_and_lock_smtp(mailboxes: RunningServer) -> None:
    server = mailboxes
    threshold = server.app.settings.smtp.auth_lockout_threshold
    for _ in range(threshold):
        answer = await asyncio.to_thread(imap_login, server, CLERK, "Sai-mat-khau-1")
        assert answer.startswith("NO")

    def locked() -> bool:
        with server.sessions() as session:
            row = session.scalars(
                select(AuthFailure).where(AuthFailure.account == CLERK)
            ).one_or_none()
            return row is not None and row.locked_until is not None

    await wait_for(locked)  # Dovecot reports after answering the client
    code, text = await asyncio.to_thread(smtp_auth, server, CLERK, PASSWORD)
    assert code == 454 and b"Too many failed logins" in text
    answer = await asyncio.to_thread(imap_login, server, CLERK, PASSWORD)
    assert answer.startswith("NO")


# --- 10.12 the Dovecot master user only from this host -----------------------------------


def master_login_from(server: RunningServer, source: str) -> str:
    """IMAP LOGIN as ``user*mailsvc`` with the master secret, from ``source``."""
    dovecot = server.app.dovecot
    host, port = server.addr("imap")

    class FromSource(imaplib.IMAP4):
        def _create_socket(self, timeout: float | None) -> socket.socket:
            return socket.create_connection(
                (host, port), timeout=timeout, source_address=(source, 0)
            )

    client = FromSource(host, port, timeout=30)
    try:
        client.starttls(ssl_context=client_tls())
        try:
            client.login(dovecot.master_login(CLERK), dovecot.master_secret())
        except imaplib.IMAP4.error as exc:
            return f"NO {exc}"
        return "OK"
    finally:
        client.logout()


async def test_master_user_is_refused_from_other_addresses(mailboxes: RunningServer) -> None:
    server = mailboxes
    assert await asyncio.to_thread(master_login_from, server, "127.0.0.1") == "OK"
    # 127.0.0.2 stands for "any other network": only 127.0.0.1 and ::1 may use it.
    answer = await asyncio.to_thread(master_login_from, server, "127.0.0.2")
    assert answer.startswith("NO")
    # An ordinary login from there still works (the restriction is the master's).
    assert await asyncio.to_thread(imap_login, server, CLERK, PASSWORD) == "OK"
