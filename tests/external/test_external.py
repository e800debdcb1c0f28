"""External mailboxes through the running server, against a second real Dovecot standing
for the other agency's IMAP server."""

from __future__ import annotations

import asyncio
import email
import json
from email.message import EmailMessage
from email.policy import SMTP

from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import tests.hostile_mail as hm
from mailsvc.checks.models import MailboxCheck
from mailsvc.cli import main
from mailsvc.db.models import AuditEntry, MessageRecord
from mailsvc.external.models import ExternalFetch, ExternalState
from mailsvc.external.poller import request_poll
from tests.e2e.conftest import RunningServer, wait_for
from tests.e2e.test_smtp_core import fetch_inbox, make_message
from tests.external.conftest import (
    CLERK,
    NAME,
    REMOTE_USER,
    HostileImap,
    Local,
    RemoteServer,
    agency_signer,
)
from tests.signatures.pki import AGENCY_DOMAIN, make_pdf, session_pki, signed_pdf
from tests.tlsutil import write_self_signed

SENDER = f"vanthu@{AGENCY_DOMAIN}"


def plain(subject: str, body: str = "Kính gửi Văn phòng.") -> bytes:
    msg = make_message(SENDER, REMOTE_USER, subject=subject, body=body)
    return agency_signer().sign(msg.as_bytes(policy=SMTP))


def classified() -> bytes:
    body = "ỦY BAN NHÂN DÂN TỈNH\n\nTỐI MẬT\n\nBáo cáo tình hình an ninh quý IV.\n"
    return plain("Báo cáo quý IV", body)


def signed_document() -> bytes:
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    msg: EmailMessage = make_message(SENDER, REMOTE_USER, subject="V/v triển khai kế hoạch")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD-UBND.pdf")
    return agency_signer().sign(msg.as_bytes(policy=SMTP))


def inbox(server: RunningServer, folder: str = "INBOX") -> list[bytes]:
    return fetch_inbox(server, CLERK, folder)


def subjects(messages: list[bytes]) -> list[str]:
    return sorted(str(email.message_from_bytes(m, policy=SMTP)["Subject"]) for m in messages)


def count(session: Session, model: type[object]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def remote_flags(remote: RemoteServer, folder: str = "INBOX") -> list[bytes]:
    client = remote.imap()
    try:
        typ, _ = client.select(folder, readonly=True)
        assert typ == "OK"
        typ, data = client.fetch("1:*", "(FLAGS)")
        assert typ == "OK"
        return [bytes(x) for x in data if isinstance(x, bytes)]
    finally:
        client.logout()


async def test_fetched_mail_is_checked_delivered_registered_and_idle_is_fast(
    local: Local, remote: RemoteServer
) -> None:
    await remote.deliver(plain("Thông báo lịch họp"), sender=SENDER)
    await remote.deliver(hm.eicar_plain())
    await remote.deliver(classified(), sender=SENDER)
    await remote.deliver(signed_document(), sender=SENDER)
    local.configure(tls="implicit", idle=True)
    server = await local.start()

    await wait_for(lambda: len(local.fetches()) == 4, timeout=30)
    rows = local.fetches()
    assert [r.uid for r in rows] == [1, 2, 3, 4]
    assert [r.outcome for r in rows] == ["accepted", "refused", "refused", "accepted"]
    assert rows[1].reason == "virus-found" and rows[2].reason == "classified-content"

    delivered = await asyncio.to_thread(inbox, server)
    assert subjects(delivered) == ["Thông báo lịch họp", "V/v triển khai kế hoạch"]
    document = next(m for m in delivered if b"35-QD-UBND.pdf" in m)
    head = document.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Mailsvc-Register-Number: 1/" in head
    assert "X-Mailsvc-Signature: valid" in head
    assert "with IMAPS id" in head  # our Received: names the hop we took it by
    with local.sessions() as session:
        records = session.scalars(select(MessageRecord)).all()
        assert {r.direction for r in records} == {"fetched"}
        assert {r.mail_from for r in records} == {SENDER}  # from the remote Return-Path
        # (the test's own IMAP reads of the local mailbox are checks too, source "imap")
        [check] = session.scalars(select(MailboxCheck).where(MailboxCheck.source == "poll")).all()
        assert check.source == "poll" and check.mailbox == REMOTE_USER
        assert check.client == "mailsvc-poller" and check.remote_ip == "127.0.0.1"
        assert check.new_messages == 4 and check.session.startswith(f"poll:{NAME}:")
        audits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "external.refused")
        ).all()
        assert sorted(a.details["reason"] for a in audits) == [
            "classified-content",
            "virus-found",
        ]
        state = session.get(ExternalState, NAME)
        assert state is not None and state.idle and state.last_uid == 4

    # Nothing changed remotely: all four are still there, none marked \Seen.
    flags = await asyncio.to_thread(remote_flags, remote)
    assert len(flags) == 4 and not any(b"\\Seen" in f for f in flags)

    # IDLE: a new message is fetched within seconds, not at the next 300 s poll.
    loop = asyncio.get_running_loop()
    started = loop.time()
    await remote.deliver(plain("Giấy mời họp khẩn"), sender=SENDER)
    await wait_for(lambda: len(local.fetches()) == 5, timeout=10)
    assert loop.time() - started < 5
    assert "Giấy mời họp khẩn" in subjects(await asyncio.to_thread(inbox, server))
    with local.sessions() as session:
        checks = session.scalars(
            select(MailboxCheck).where(MailboxCheck.source == "poll").order_by(MailboxCheck.id)
        ).all()
        assert [c.new_messages for c in checks] == [4, 1]


async def test_stop_mid_poll_and_restart_takes_every_message_once(local: Local) -> None:
    total = 24
    assert local.remote is not None
    for n in range(total):
        await local.remote.deliver(plain(f"Công văn số {n + 1:02d}/UBND"), sender=SENDER)
    local.configure(tls="starttls", idle=False, poll_seconds=0.5)
    await local.start()
    await wait_for(lambda: len(local.fetches()) >= 2, timeout=30)
    await local.stop()  # waits for the message in hand, never cuts it in half
    taken = local.fetches()
    assert 2 <= len(taken) < total, "the stop should land in the middle of the poll"
    assert all(r.outcome == "accepted" for r in taken)

    # A crash right after the last acceptance, before its UID was recorded: undo the record.
    last = taken[-1]
    with local.sessions() as session, session.begin():
        session.delete(session.get(ExternalFetch, last.id))
        state = session.get(ExternalState, NAME)
        assert state is not None
        state.last_uid = last.uid - 1

    server = await local.start()
    await wait_for(lambda: len(local.fetches()) == total, timeout=60)
    delivered = await asyncio.to_thread(inbox, server)
    assert subjects(delivered) == [f"Công văn số {n + 1:02d}/UBND" for n in range(total)]
    rows = local.fetches()
    assert sorted(r.uid for r in rows) == list(range(1, total + 1))
    assert [r.outcome for r in rows if r.uid == last.uid] == ["duplicate"]
    with local.sessions() as session:
        assert count(session, MessageRecord) == total
        checks = session.scalars(
            select(MailboxCheck).where(MailboxCheck.source == "poll").order_by(MailboxCheck.id)
        ).all()
    # The interrupted poll is a check too; the duplicate was fetched (and counted) twice.
    assert checks[0].new_messages == len(taken)
    assert sum(c.new_messages for c in checks) == total + 1


async def test_uidvalidity_change_fetches_again_without_duplicates(
    local: Local, remote: RemoteServer
) -> None:
    folder = "Văn bản đến"
    originals = [plain(f"Văn bản {n}") for n in range(3)]

    def fill(messages: list[bytes], recreate: bool) -> None:
        client = remote.imap()
        try:
            # modified UTF-7 (RFC 3501 5.1.3), here from Python's own UTF-7 codec
            encoded = '"' + folder.encode("utf-7").decode("ascii").replace("+", "&") + '"'
            if recreate:
                assert client.delete(encoded)[0] == "OK"
            assert client.create(encoded)[0] == "OK"
            for raw in messages:
                assert client.append(encoded, None, None, raw)[0] == "OK"
        finally:
            client.logout()

    await asyncio.to_thread(fill, originals, False)
    local.configure(folder=folder, idle=True, poll_seconds=300)
    server = await local.start()
    await wait_for(lambda: len(local.fetches()) == 3, timeout=30)
    with local.sessions() as session:
        first = session.get(ExternalState, NAME)
        assert first is not None and first.uidvalidity is not None

    # The other agency rebuilds the folder: same messages, one new, a new UIDVALIDITY.
    # Our IDLE session is not told; the next full poll is, here asked for at once (as
    # `mailsvc external poll` does).
    await asyncio.to_thread(fill, [*originals, plain("Văn bản mới")], True)
    with local.sessions() as session, session.begin():
        request_poll(session, NAME)
    await wait_for(lambda: len(local.fetches()) == 7, timeout=30)
    rows = local.fetches()
    assert [r.outcome for r in rows[3:]] == ["duplicate", "duplicate", "duplicate", "accepted"]
    assert len({r.uidvalidity for r in rows}) == 2
    delivered = await asyncio.to_thread(inbox, server)
    assert subjects(delivered) == ["Văn bản 0", "Văn bản 1", "Văn bản 2", "Văn bản mới"]
    with local.sessions() as session:
        [change] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "external.uidvalidity-changed")
        ).all()
        assert change.details["old"] == first.uidvalidity


async def test_tempfail_leaves_the_uid_for_a_later_poll(local: Local, remote: RemoteServer) -> None:
    local.configure(tls="none", idle=True, poll_seconds=1)
    server = await local.start()
    await wait_for(lambda: server.app.external.pollers[NAME].polls >= 1, timeout=30)
    assert server.app.clamd is not None
    await server.app.clamd.stop()  # antivirus cannot scan: the pipeline says "try later"
    await remote.deliver(plain("Kế hoạch năm 2027"), sender=SENDER)

    def deferred() -> bool:
        with local.sessions() as session:
            state = session.get(ExternalState, NAME)
            return state is not None and "deferred" in state.last_error

    await wait_for(deferred, timeout=30)
    assert local.fetches() == []
    with local.sessions() as session:
        assert count(session, MessageRecord) == 0
    await server.app.clamd.start()
    await wait_for(lambda: len(local.fetches()) == 1, timeout=30)
    assert local.fetches()[0].outcome == "accepted"
    assert subjects(await asyncio.to_thread(inbox, server)) == ["Kế hoạch năm 2027"]


async def test_cli_lists_and_asks_the_running_server_to_poll(
    local: Local, remote: RemoteServer
) -> None:
    await remote.deliver(plain("Công văn số 7/UBND"), sender=SENDER)
    local.configure(tls="starttls", idle=False, poll_seconds=300)
    server = await local.start()
    await wait_for(lambda: len(local.fetches()) == 1, timeout=30)
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(main, ["--home", str(local.home), *args])

    # No IDLE and the next scheduled poll in five minutes: only the request fetches it.
    await remote.deliver(plain("Công văn số 8/UBND"), sender=SENDER)
    result = await asyncio.to_thread(cli, "external", "poll", NAME, "--wait", "20")
    assert result.exit_code == 0, result.output
    assert "last_uid       2" in result.output and "mode           poll" in result.output
    assert subjects(await asyncio.to_thread(inbox, server)) == [
        "Công văn số 7/UBND",
        "Công văn số 8/UBND",
    ]

    listed = await asyncio.to_thread(cli, "external", "list")
    assert listed.exit_code == 0, listed.output
    header, _rule, row = listed.output.splitlines()
    assert header.split()[:4] == ["NAME", "SERVER", "DELIVER", "TO"]
    assert row.startswith(NAME) and f"imap+starttls://localhost:{remote.imap_port}/INBOX" in row
    as_json = await asyncio.to_thread(cli, "external", "list", "--json")
    [view] = json.loads(as_json.output)
    assert view["last_uid"] == 2 and view["accepted"] == 2 and view["last_poll_new"] == 1
    assert view["last_poll"].endswith("+07:00")

    unknown = await asyncio.to_thread(cli, "external", "poll", "khong-co")
    assert unknown.exit_code == 1 and "no external mailbox named 'khong-co'" in unknown.output


async def test_reconnects_after_the_remote_server_goes_away(
    local: Local, remote: RemoteServer
) -> None:
    local.configure(tls="implicit", idle=True, poll_seconds=300)
    server = await local.start()
    poller = server.app.external.pollers[NAME]
    await wait_for(lambda: poller.polls >= 1, timeout=30)

    def last_error() -> str:
        with local.sessions() as session:
            state = session.get(ExternalState, NAME)
            return state.last_error if state is not None else ""

    await remote.dovecot.stop()  # the IDLE connection drops; reconnecting fails for now
    await wait_for(lambda: last_error() != "", timeout=30)
    await remote.dovecot.start()
    await remote.deliver(plain("Thông báo sau sự cố"), sender=SENDER)
    await wait_for(lambda: len(local.fetches()) == 1, timeout=30)
    assert subjects(await asyncio.to_thread(inbox, server)) == ["Thông báo sau sự cố"]
    assert last_error() == ""  # cleared by the successful poll


async def test_a_server_certificate_not_signed_by_ca_file_is_refused(
    local: Local, remote: RemoteServer
) -> None:
    await remote.deliver(plain("Không được lấy"), sender=SENDER)
    local.configure(tls="implicit", idle=True)
    impostor = local.home / "impostor.pem"
    await asyncio.to_thread(write_self_signed, impostor, local.home / "impostor.key")
    config = local.home / "mailsvc.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(remote.cert), str(impostor)), encoding="utf-8")
    await local.start()

    def last_error() -> str:
        with local.sessions() as session:
            state = session.get(ExternalState, NAME)
            return state.last_error if state is not None else ""

    await wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in last_error(), timeout=30)
    assert local.fetches() == []
    with local.sessions() as session:
        assert count(session, MailboxCheck) == 0


async def test_a_hostile_server_is_cut_off_recorded_and_polled_afresh(
    hostile_local: Local,
) -> None:
    """The server lists a message as 1000 bytes: the body asked for is the limit plus one
    byte, so a bigger one is refused as too large. A literal beyond the limit, or an
    answer dripped one byte at a time, drops the connection: the error shows in
    `mailsvc external list` and the next poll starts on a new connection."""
    hostile = HostileImap("honest")
    hostile.body = b"Subject: lon\r\n\r\n" + b"x" * 300_000
    limit = 100_000
    async with hostile as port:
        hostile_local.configure(
            tls="none",
            port=port,
            idle=False,
            poll_seconds=0.5,
            timeout=3,
            extra=f"\n[smtp]\nmax_message_size = {limit}\n",
        )
        await hostile_local.start()
        await wait_for(lambda: len(hostile_local.fetches()) == 1, timeout=20)
        [row] = hostile_local.fetches()
        assert (row.outcome, row.reason, row.size) == ("refused", "message-too-large", limit + 1)

        def last_error() -> str:
            result = CliRunner().invoke(
                main, ["--home", str(hostile_local.home), "external", "list", "--json"]
            )
            assert result.exit_code == 0, result.output
            return str(json.loads(result.output)[0]["last_error"])

        hostile.mode, hostile.uids = "big-literal", [1, 2]
        await wait_for(lambda: "larger than the limit" in last_error(), timeout=20)
        assert hostile.streamed < 16 * 1024 * 1024
        logins = hostile.logins
        hostile.mode = "drip"
        await wait_for(lambda: "no complete answer in 3 s" in last_error(), timeout=20)
        assert hostile.logins > logins  # a new connection, not the broken one
        hostile.mode, hostile.body = "honest", b"Subject: ngan\r\n\r\nxin chao\r\n"
        await wait_for(lambda: len(hostile_local.fetches()) == 2, timeout=20)
        await wait_for(lambda: last_error() == "", timeout=20)
