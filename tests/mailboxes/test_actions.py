"""Service actions in users' mailboxes through aioimaplib and the master user."""

from __future__ import annotations

import os

import pytest

from mailsvc.mailboxes.actions import MailboxActionError, MailboxActions, quote
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.events import parse_line
from mailsvc.mailboxes.lmtp import LmtpClient

from .conftest import PASSWORD, Accounts, Imap, Tls, async_wait_until, message


def flags_of(svc: DovecotService, user: str, folder: str = "INBOX") -> list[bytes]:
    imap = Imap(*svc.imap_address)
    imap.login(user, PASSWORD)
    imap.select(folder, readonly=True)
    _typ, data = imap.fetch("1:*", "(FLAGS)")
    imap.logout()
    return [d for d in data if d]


async def test_flag_move_and_list(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls
) -> None:
    user = accounts.add("vanthu")
    actions = MailboxActions.for_service(dovecot, str(tls.cert))
    first = message(subject="Hỏa tốc", X_Mailsvc_Queue_Id="Q1")
    second = message(subject="Thường", X_Mailsvc_Queue_Id="Q12")
    await lmtp.deliver(user, first)
    await lmtp.deliver(user, second)
    msgid = first.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()

    assert await actions.add_flags(user, ["\\Flagged"], message_id=msgid) == 1
    flags = flags_of(dovecot, user)
    assert b"\\Flagged" in flags[0] and b"\\Flagged" not in flags[1]
    assert await actions.add_flags(user, ["\\Flagged"], message_id="<none@x>") == 0

    # "Q1" is a substring of "Q12": only the exact match moves (recall)
    assert await actions.find(user, queue_id="Q1") == [1]
    assert await actions.move(user, "Recalled", queue_id="Q1") == 1
    assert "Recalled" in await actions.list_folders(user)
    imap = Imap(*dovecot.imap_address)
    imap.login(user, PASSWORD)
    assert imap.select("INBOX", readonly=True)[1] == [b"1"]
    assert imap.select("Recalled", readonly=True)[1] == [b"1"]
    _typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert data[0][1].endswith(first)
    imap.logout()
    assert await actions.move(user, "Recalled", queue_id="Q1") == 0

    # service sessions are told apart in the event log by master_user
    def service_logins() -> list:
        text = dovecot.events_path.read_text(encoding="utf-8")
        return [
            e
            for e in map(parse_line, text.splitlines())
            if e and e.kind == "login" and e.master_user == "mailsvc"
        ]

    async def seen() -> bool:
        return len(service_logins()) >= 1

    await async_wait_until(seen)
    assert all(e.user == user and e.success for e in service_logins())


async def test_service_actions_work_on_locked_accounts_but_not_removed(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls
) -> None:
    actions = MailboxActions.for_service(dovecot, str(tls.cert))
    otp = accounts.add("otp", "Ab12-Cd34-Ef56-Gh78", must_change=True)
    off = accounts.add("off", enabled=False)
    for user in (otp, off):
        raw = message(X_Mailsvc_Queue_Id="R1")
        await lmtp.deliver(user, raw)
        assert await actions.move(user, "Trash", queue_id="R1") == 1
    accounts.set(off, removed=True)
    with pytest.raises(MailboxActionError):
        await actions.list_folders(off)


async def test_normal_users_cannot_act_as_the_service(
    dovecot: DovecotService, accounts: Accounts, tls: Tls
) -> None:
    alice = accounts.add("alice")
    bob = accounts.add("bob")
    host, port = dovecot.imaps_address
    from mailsvc.mailboxes.actions import pinned_context

    for master, secret in (
        ("mailsvc", PASSWORD),
        (alice.split("@")[0], PASSWORD),
        (alice, PASSWORD),
        ("mailsvc", ""),
    ):
        fake = MailboxActions(
            host,
            port,
            master_user=master,
            master_secret=secret,
            ssl_context=pinned_context(str(tls.cert)),
        )
        with pytest.raises(MailboxActionError):
            await fake.list_folders(bob)
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


async def test_holds_is_false_for_a_message_whose_file_is_gone(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls
) -> None:
    """A restored Maildir can lack a file its (restored) index still lists: Dovecot then
    answers the header search from its cache and the body fetch without the body. The
    copy is not there, and repair must deliver it (it was marked delivered, and lost)."""
    user = accounts.add("khoiphuc")
    actions = MailboxActions.for_service(dovecot, str(tls.cert))
    await lmtp.deliver(user, message(subject="Giữ lại", X_Mailsvc_Queue_Id="KEEP1"))
    await lmtp.deliver(user, message(subject="Mất tệp", X_Mailsvc_Queue_Id="GONE1"))
    assert await actions.holds(user, queue_id="GONE1")  # searched once: in the cache now
    assert await actions.holds(user, queue_id="KEEP1")
    maildir = dovecot.maildir_root / user.split("@")[1] / user.split("@")[0] / "Maildir"
    gone = [
        path
        for sub in ("cur", "new")
        for path in (maildir / sub).iterdir()
        if b"GONE1" in path.read_bytes()
    ]
    assert len(gone) == 1
    folder = gone[0].parent
    times = folder.stat()
    gone[0].unlink()
    # as a restore leaves it: the folder's times as they were, so Dovecot sees no change
    os.utime(folder, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert not await actions.holds(user, queue_id="GONE1")
    assert await actions.holds(user, queue_id="KEEP1")
