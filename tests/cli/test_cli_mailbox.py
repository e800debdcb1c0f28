"""`mailsvc mailbox ...` through the real CLI against the test database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import AuditEntry, Mailbox
from mailsvc.passwords import verify_password

DOMAIN = "stttt.example.gov.vn"


def _mailbox(sessions: sessionmaker[Session], address: str) -> Mailbox:
    with sessions() as session:
        return session.scalars(select(Mailbox).where(Mailbox.address == address)).one()


def _audit(sessions: sessionmaker[Session]) -> list[AuditEntry]:
    with sessions() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _actions(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in _audit(sessions)]


def test_add_by_name_derives_conventional_address(admin_cli, db_sessions) -> None:
    result = admin_cli("mailbox", "add", "--name", "Nguyễn Văn An", "--unit", "stttt")
    assert f"added annv.stttt@{DOMAIN}" in result.stdout
    password = re.search(r"one-time password: (\S+)", result.stdout)
    assert password is not None
    box = _mailbox(db_sessions, f"annv.stttt@{DOMAIN}")
    assert box.full_name == "Nguyễn Văn An" and box.unit == "stttt" and box.role == "official"
    assert box.must_change and box.password_expires_at is not None
    assert verify_password(box.password_hash, password.group(1))
    assert ("mailbox.add", f"annv.stttt@{DOMAIN}") in _actions(db_sessions)


def test_clash_names_a_free_suggestion(admin_cli) -> None:
    admin_cli("mailbox", "add", "--name", "Nguyễn Văn An", "--unit", "stttt")
    clash = admin_cli("mailbox", "add", "--name", "Ngô Việt An", "--unit", "stttt", ok=False)
    assert clash.exit_code == 1
    assert f"annv.stttt@{DOMAIN} already exists (Nguyễn Văn An)" in clash.output
    assert f"free alternative: annv2.stttt@{DOMAIN}" in clash.output
    assert "Traceback" not in clash.output
    admin_cli("mailbox", "add", "--address", f"annv2.stttt@{DOMAIN}", "--name", "Ngô Việt An")
    again = admin_cli("mailbox", "add", "--name", "Nông Văn An", "--unit", "stttt", ok=False)
    assert f"free alternative: annv3.stttt@{DOMAIN}" in again.output


def test_list_and_show_json(admin_cli) -> None:
    admin_cli("agency", "add", "000.00.00.H61", "Sở Thông tin và Truyền thông", "--domain", DOMAIN)
    admin_cli(
        "mailbox",
        "add",
        "--name",
        "Trần Thị Đào",
        "--unit",
        "stttt",
        "--role",
        "clerk",
        "--agency",
        "000.00.00.H61",
    )
    admin_cli("mailbox", "add", f"leader@{DOMAIN}", "--role", "leader")
    rows = json.loads(admin_cli("mailbox", "list", "--json").stdout)
    assert [r["address"] for r in rows] == [f"daott.stttt@{DOMAIN}", f"leader@{DOMAIN}"]
    assert rows[0]["agency"] == "000.00.00.H61" and rows[0]["role"] == "clerk"
    assert rows[0]["created_at"].endswith("+07:00")
    assert "password_hash" not in rows[0]
    shown = json.loads(admin_cli("mailbox", "show", f"daott.stttt@{DOMAIN}", "--json").stdout)
    assert shown["full_name"] == "Trần Thị Đào" and shown["must_change"] is True
    table = admin_cli("mailbox", "list").stdout
    assert "Trần Thị Đào" in table and "ADDRESS" in table and "must-change" in table
    clerks = json.loads(admin_cli("mailbox", "list", "--role", "clerk", "--json").stdout)
    assert len(clerks) == 1


def test_unknown_role_and_bad_address_are_refused(admin_cli) -> None:
    bad_role = admin_cli("mailbox", "add", f"x@{DOMAIN}", "--role", "boss", ok=False)
    assert bad_role.exit_code != 0 and "boss" in bad_role.output
    bad = admin_cli("mailbox", "add", "not an address", ok=False)
    assert bad.exit_code == 1 and "not a valid mailbox address" in bad.output
    missing = admin_cli("mailbox", "show", f"nobody@{DOMAIN}", ok=False)
    assert missing.exit_code == 1 and f"no mailbox nobody@{DOMAIN}" in missing.output


def test_reset_password_is_one_time_and_expires(admin_cli, db_sessions) -> None:
    address = f"annv.stttt@{DOMAIN}"
    admin_cli("mailbox", "add", address)
    out = json.loads(admin_cli("mailbox", "reset-password", address, "--json").stdout)
    box = _mailbox(db_sessions, address)
    assert verify_password(box.password_hash, out["one_time_password"])
    assert box.must_change
    assert box.password_expires_at is not None and box.password_changed_at is not None
    hours = (box.password_expires_at - box.password_changed_at).total_seconds() / 3600
    assert hours == 72
    assert re.fullmatch(r"(\w{4}-){3}\w{4}", out["one_time_password"])
    assert ("mailbox.reset-password", address) in _actions(db_sessions)
    # The password itself never reaches the audit log.
    for entry in _audit(db_sessions):
        assert out["one_time_password"] not in json.dumps(entry.details)


def test_set_password_from_stdin_checks_strength(admin_cli, db_sessions) -> None:
    address = f"annv.stttt@{DOMAIN}"
    admin_cli("mailbox", "add", address)
    weak = admin_cli("mailbox", "set-password", address, "--stdin", input="short\n", ok=False)
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output
    admin_cli("mailbox", "set-password", address, "--stdin", input="Quang-Trung-1788\n")
    box = _mailbox(db_sessions, address)
    assert verify_password(box.password_hash, "Quang-Trung-1788") and box.must_change
    admin_cli(
        "mailbox",
        "set-password",
        address,
        "--stdin",
        "--no-must-change",
        input="Hai-Ba-Trung-40\n",
    )
    box = _mailbox(db_sessions, address)
    assert verify_password(box.password_hash, "Hai-Ba-Trung-40")
    assert not box.must_change and box.password_expires_at is None


def test_set_password_prompt_asks_twice(admin_cli, db_sessions) -> None:
    address = f"annv.stttt@{DOMAIN}"
    admin_cli("mailbox", "add", address)
    admin_cli("mailbox", "set-password", address, input="Dien-Bien-1954\nDien-Bien-1954\n")
    assert verify_password(_mailbox(db_sessions, address).password_hash, "Dien-Bien-1954")


def test_disable_enable_remove_and_purge(admin_cli, admin_home: Path, db_sessions) -> None:
    keep, purge = f"keep@{DOMAIN}", f"purge@{DOMAIN}"
    admin_cli("mailbox", "add", keep)
    admin_cli("mailbox", "add", purge)
    admin_cli("mailbox", "disable", keep)
    assert not _mailbox(db_sessions, keep).enabled
    admin_cli("mailbox", "enable", keep)
    assert _mailbox(db_sessions, keep).enabled

    for local in ("keep", "purge"):
        cur = admin_home / "mail" / DOMAIN / local / "cur"
        cur.mkdir(parents=True)
        (cur / "1.msg:2,S").write_bytes(b"Subject: x\r\n\r\nbody\r\n")

    admin_cli("mailbox", "remove", keep)
    box = _mailbox(db_sessions, keep)
    assert box.removed and not box.enabled
    assert (admin_home / "mail" / DOMAIN / "keep" / "cur" / "1.msg:2,S").exists()
    assert keep not in admin_cli("mailbox", "list").stdout
    assert keep in admin_cli("mailbox", "list", "--all").stdout
    again = admin_cli("mailbox", "enable", keep, ok=False)
    assert again.exit_code == 1 and "removed" in again.output

    refused = admin_cli("mailbox", "remove", purge, "--purge", input="n\n", ok=False)
    assert refused.exit_code != 0
    assert not _mailbox(db_sessions, purge).removed
    assert (admin_home / "mail" / DOMAIN / "purge").exists()
    admin_cli("mailbox", "remove", purge, "--purge", input="y\n")
    assert not (admin_home / "mail" / DOMAIN / "purge").exists()
    assert (admin_home / "mail" / DOMAIN / "keep").exists()
    assert _mailbox(db_sessions, purge).removed
    actions = _actions(db_sessions)
    for action in ("mailbox.disable", "mailbox.enable", "mailbox.remove"):
        assert (action, keep) in actions
    assert ("mailbox.remove", purge) in actions


def test_every_change_is_audited_by_the_acting_admin(admin_cli, db_sessions) -> None:
    admin_cli("mailbox", "add", f"a@{DOMAIN}")
    admin_cli("mailbox", "update", f"a@{DOMAIN}", "--role", "leader", "--name", "Lê Văn Tám")
    entries = _audit(db_sessions)
    assert [e.action for e in entries] == ["mailbox.add", "mailbox.update"]
    assert {e.actor for e in entries} == {"cli:tester"}
    assert entries[1].details == {"full_name": "Lê Văn Tám", "role": "leader"}
