"""Dovecot run by mailsvc: generated config, TLS, authentication rules, isolation, restart."""

from __future__ import annotations

import imaplib
import pwd
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsvc.errors import DependencyError
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.events import parse_line
from mailsvc.mailboxes.lmtp import LmtpClient
from tests.ports import unused_port

from .conftest import (
    DOMAIN,
    PAGE,
    PASSWORD,
    Accounts,
    Imap,
    ImapSsl,
    StartDovecot,
    Tls,
    async_wait_until,
    client_context,
    message,
)


def login(svc: DovecotService, user: str, password: str = PASSWORD) -> Imap:
    imap = Imap(*svc.imap_address)
    imap.login(user, password)
    return imap


def login_error(svc: DovecotService, user: str, password: str) -> str:
    imap = Imap(*svc.imap_address)
    try:
        with pytest.raises(imaplib.IMAP4.error) as err:
            imap.login(user, password)
        return str(err.value)
    finally:
        imap.shutdown()


async def test_generated_config_is_private_and_self_contained(dovecot: DovecotService) -> None:
    conf = dovecot.config_path.read_text()
    assert "/etc/dovecot" not in conf
    assert dovecot.imap_address[1] > 0 and dovecot.imaps_address[1] > 0
    assert f"port = {dovecot.imap_address[1]}" in conf
    assert dovecot.lmtp_path.is_socket()
    assert dovecot.runtime_dir in dovecot.lmtp_path.parents
    for path in (
        dovecot.config_path,
        dovecot.sql_path,
        dovecot.master_secret_path,
        dovecot.master_users_path,
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(dovecot.lmtp_path.stat().st_mode) == 0o600
    # doveconf parses the file we wrote on its own (no /etc/dovecot involved)
    out = subprocess.run(  # noqa: ASYNC221 - a one-off check of the written file
        ["doveconf", "-c", str(dovecot.config_path), "-h", "mail_home"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"{dovecot.maildir_root}/%d/%n"
    mail_uid = pwd.getpwnam("vmail").pw_uid
    assert dovecot.maildir_root.stat().st_uid == mail_uid


async def test_imaplib_full_session(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient, tls: Tls
) -> None:
    user = accounts.add("annv.stttt")
    raw = message(body="Dòng một\r\n.dòng bắt đầu bằng dấu chấm\r\n..hai chấm\r\n")
    await lmtp.deliver(user, raw, sender="vanthu@ubnd.gov.vn")

    imap = Imap(*dovecot.imap_address)
    imap.starttls(client_context(tls))  # certificate verified, hostname 127.0.0.1 in SAN
    imap.login(user, PASSWORD)
    typ, folders = imap.list()
    names = b"\n".join(folders)
    for use, name in (
        (b"\\Sent", b"Sent"),
        (b"\\Drafts", b"Drafts"),
        (b"\\Junk", b"Junk"),
        (b"\\Trash", b"Trash"),
    ):
        assert use in names and name in names
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    fetched = data[0][1]
    # Dovecot prepends exactly one Return-Path line; every other byte is ours.
    assert fetched == b"Return-Path: <vanthu@ubnd.gov.vn>\r\n" + raw
    typ, _ = imap.uid("STORE", "1", "+FLAGS", "(\\Flagged \\Deleted)")
    assert typ == "OK"
    typ, data = imap.uid("FETCH", "1", "(FLAGS)")
    assert b"\\Flagged" in data[0]
    typ, data = imap.expunge()
    assert typ == "OK" and data == [b"1"]
    sent = message(subject="Trả lời")
    typ, data = imap.append("Sent", "(\\Seen)", None, sent)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = imap.select("Sent", readonly=True)
    assert data == [b"1"]
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == sent
    imap.logout()
    # mail files belong to the mail user
    maildir = dovecot.maildir_root / DOMAIN / "annv.stttt" / "Maildir"
    assert maildir.stat().st_uid == pwd.getpwnam("vmail").pw_uid


async def test_implicit_tls_on_imaps(dovecot: DovecotService, accounts: Accounts, tls: Tls) -> None:
    user = accounts.add("tls")
    imap = ImapSsl("localhost", dovecot.imaps_address[1], ssl_context=client_context(tls))
    assert imap.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
    typ, _ = imap.login(user, PASSWORD)
    assert typ == "OK"
    imap.logout()


async def test_plaintext_auth_needs_tls_from_another_address(
    start_dovecot: StartDovecot, accounts: Accounts, tls: Tls
) -> None:
    # Server on 127.0.0.2, client from 127.0.0.1: not "local", so no AUTH before STARTTLS.
    svc = await start_dovecot(imap="127.0.0.2:0", imaps="127.0.0.2:0")
    user = accounts.add("remote")
    imap = _ImapFrom127(*svc.imap_address)
    assert "LOGINDISABLED" in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(user, PASSWORD)
    imap.shutdown()
    imap = _ImapFrom127(*svc.imap_address)
    imap.starttls(client_context(tls))
    assert "LOGINDISABLED" not in imap.capabilities
    typ, _ = imap.login(user, PASSWORD)
    assert typ == "OK"
    imap.logout()


class _ImapFrom127(Imap):
    source = ("127.0.0.1", 0)


async def test_wrong_password_disabled_and_removed(
    dovecot: DovecotService, accounts: Accounts
) -> None:
    user = accounts.add("dung")
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, user, "wrong-password-1A")
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, "nobody@" + DOMAIN, PASSWORD)
    accounts.set(user, enabled=False)
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, user, "wrong-password-1A")
    err = login_error(dovecot, user, PASSWORD)
    assert "CONTACTADMIN" in err and "disabled" in err
    accounts.set(user, enabled=True)
    login(dovecot, user).logout()  # applies at the next login (no auth cache)
    accounts.set(user, removed=True)
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, user, PASSWORD)


async def test_one_time_password_names_the_page_only_with_the_right_password(
    dovecot: DovecotService, accounts: Accounts
) -> None:
    user = accounts.add("motlan", "Xy7k-9Qa2-Lm4P-8Rt3", must_change=True)
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, user, "Xy7k-9Qa2-Lm4P-0000")
    err = login_error(dovecot, user, "Xy7k-9Qa2-Lm4P-8Rt3")
    assert "[CONTACTADMIN]" in err and PAGE in err
    # the user sets a new password on the page: applies at the next login
    accounts.set(user, password="Mat-khau-moi-2024", must_change=False)
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, user, "Xy7k-9Qa2-Lm4P-8Rt3")
    login(dovecot, user, "Mat-khau-moi-2024").logout()


async def test_expired_one_time_password(dovecot: DovecotService, accounts: Accounts) -> None:
    import datetime as dt

    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    user = accounts.add("hethan", "Ab12-Cd34-Ef56-Gh78", must_change=True, expires=past)
    err = login_error(dovecot, user, "Ab12-Cd34-Ef56-Gh78")
    assert "[CONTACTADMIN]" in err and "expired" in err and PAGE in err
    accounts.set(user, password_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    err = login_error(dovecot, user, "Ab12-Cd34-Ef56-Gh78")
    assert "one-time password" in err


async def test_users_cannot_reach_each_other(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    alice = accounts.add("alice")
    bob = accounts.add("bob")
    await lmtp.deliver(bob, message(subject="bí mật"))
    imap = login(dovecot, alice)
    typ, folders = imap.list('""', "*")
    assert not any(b"bob" in f for f in folders)
    for name in (
        bob,
        "bob",
        "~bob",
        "../bob/Maildir",
        "../../bob",
        "/bob",
        f"../{DOMAIN}/bob",
        "#shared/bob",
        "#users/bob",
        "Other Users/bob",
        "INBOX/../../bob",
        f"../../{DOMAIN}/bob/Maildir",
        f"~/../../{DOMAIN}/bob",
        ".../bob",
    ):
        name = '"' + name + '"'
        typ, data = imap.select(name)
        assert typ == "NO", (name, data)
        typ, data = imap.status(name, "(MESSAGES)")
        assert typ == "NO", (name, data)
    typ, data = imap.list('"../"', "*")
    assert not any(b"bob" in (f or b"") for f in data)
    typ, data = imap.select("INBOX")
    assert data == [b"0"]
    imap.logout()
    # a normal user's password cannot be used as a master login
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, f"{bob}*{alice}", PASSWORD)
    assert "AUTHENTICATIONFAILED" in login_error(dovecot, f"{bob}*mailsvc", PASSWORD)


async def test_restart_after_kill(
    dovecot: DovecotService, accounts: Accounts, lmtp: LmtpClient
) -> None:
    user = accounts.add("restart")
    await lmtp.deliver(user, message())
    assert dovecot.supervisor is not None
    old_pid = dovecot.supervisor.pid
    dovecot.supervisor.kill_for_test()

    async def restarted() -> bool:
        return dovecot.supervisor is not None and dovecot.supervisor.restarts >= 1

    await async_wait_until(restarted, timeout=20)
    assert dovecot.supervisor.pid != old_pid
    await lmtp.deliver(user, message())  # the pooled connection is stale: reconnects
    imap = login(dovecot, user)
    assert imap.select("INBOX")[1] == [b"2"]
    imap.logout()


async def test_events_log_has_logins_and_selects(
    dovecot: DovecotService, accounts: Accounts
) -> None:
    user = accounts.add("events")
    imap = login(dovecot, user)
    imap.select("INBOX")
    imap.select("Sent", readonly=True)
    imap.logout()
    login_error(dovecot, user, "bad-password-9X")

    def events() -> list:
        text = dovecot.events_path.read_text(encoding="utf-8")
        return [e for e in map(parse_line, text.splitlines()) if e is not None]

    async def complete() -> bool:
        return (
            sum(e.kind == "select" for e in events()) >= 2
            and sum(e.kind == "login" for e in events()) >= 2
        )

    await async_wait_until(complete)
    logins = [e for e in events() if e.kind == "login"]
    assert [e.success for e in logins] == [True, False]
    assert all(e.user == user and e.remote_ip == "127.0.0.1" for e in logins)
    selects = [e for e in events() if e.kind == "select"]
    assert [(e.command, e.mailbox, e.success) for e in selects] == [
        ("SELECT", "INBOX", True),
        ("EXAMINE", "Sent", True),
    ]
    assert selects[0].session == logins[0].session and selects[0].at.tzinfo is not None
    service_login = [e for e in logins if e.master_user]
    assert service_login == []


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another program listens on for the test's length."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", unused_port()))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_a_port_chosen_for_0_and_taken_meanwhile_is_chosen_again(
    start_dovecot: StartDovecot, held_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 0 is resolved by asking the kernel, and Dovecot binds the answer a moment
    # later; another program took it in between once in CI and the start failed.
    svc = await start_dovecot(chosen_imap=held_port)
    assert svc.imap_address[1] not in (0, held_port)
    assert "a chosen port was taken meanwhile" in caplog.text
    imap = Imap(*svc.imap_address)
    assert imap.welcome.startswith(b"* OK")
    imap.logout()


async def test_a_configured_port_in_use_fails_the_start_once(
    start_dovecot: StartDovecot, held_port: int, home: Path
) -> None:
    with pytest.raises(DependencyError, match="Address already in use") as failed:
        await start_dovecot(imap=f"127.0.0.1:{held_port}")
    assert f"127.0.0.1, {held_port}" in str(failed.value)
    log = (home / "dovecot" / "dovecot.log").read_text(encoding="utf-8")
    assert log.count("Failed to start listeners") == 1  # not tried again on another port
