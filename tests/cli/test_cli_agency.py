"""`mailsvc agency ...` and the cached agency directory (DbDirectory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.directory import DbDirectory, InvalidAgencyError, covering_agency, parse_dkim_key

TXT = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0fake"


def _add_health_agency(admin_cli, *extra: str) -> None:
    admin_cli(
        "agency",
        "add",
        "000.00.00.H29",
        "Sở Y tế tỉnh Hà Nam",
        "--domain",
        "soyte.hanam.gov.vn",
        "--domain",
        "SYT.HaNam.gov.vn.",
        "--known-address",
        "VanThu@soyte.hanam.gov.vn",
        "--alias",
        "vanthu@syt.hanam.gov.vn",
        "--dkim-key",
        f"s2024:{TXT}",
        "--allowed-sender",
        "203.0.113.7",
        "--allowed-sender",
        "198.51.100.0/24",
        *extra,
    )


def test_add_list_show_json(admin_cli) -> None:
    _add_health_agency(admin_cli)
    admin_cli(
        "agency",
        "add",
        "000.00.00.H61",
        "Sở Thông tin và Truyền thông",
        "--domain",
        "stttt.example.gov.vn",
        "--local",
    )
    rows = json.loads(admin_cli("agency", "list", "--json").stdout)
    assert [r["code"] for r in rows] == ["000.00.00.H29", "000.00.00.H61"]
    shown = json.loads(admin_cli("agency", "show", "000.00.00.H29", "--json").stdout)
    assert shown["name"] == "Sở Y tế tỉnh Hà Nam"
    assert shown["domains"] == ["soyte.hanam.gov.vn", "syt.hanam.gov.vn"]
    assert shown["known_addresses"] == ["vanthu@soyte.hanam.gov.vn"]
    assert shown["aliases"] == ["vanthu@syt.hanam.gov.vn"]
    assert shown["dkim_keys"] == {
        "s2024._domainkey.soyte.hanam.gov.vn": TXT,
        "s2024._domainkey.syt.hanam.gov.vn": TXT,
    }
    assert shown["allowed_senders"] == ["203.0.113.7/32", "198.51.100.0/24"]
    assert shown["local"] is False and shown["mailboxes"] == []
    table = admin_cli("agency", "list").stdout
    assert "Sở Y tế tỉnh Hà Nam" in table and "CODE" in table
    assert "Sở Thông tin" in admin_cli("agency", "show", "000.00.00.H61").stdout


def test_conflicts_and_bad_values_are_refused(admin_cli) -> None:
    _add_health_agency(admin_cli)
    dup = admin_cli("agency", "add", "000.00.00.H29", "Khác", ok=False)
    assert dup.exit_code == 1 and "already exists" in dup.output
    taken = admin_cli(
        "agency", "add", "000.00.00.H30", "Khác", "--domain", "soyte.hanam.gov.vn", ok=False
    )
    assert "already belongs to agency 000.00.00.H29" in taken.output
    for args, message in [
        (["--allowed-sender", "not-an-ip"], "not an IP address"),
        (["--domain", "bad domain"], "not a valid domain"),
        (["--domain", "a.vn", "--dkim-key", "sel:no key here"], "no p= tag"),
        (["--dkim-key", f"sel:{TXT}"], "needs at least one --domain"),
        (["--known-address", "nobody"], "not a valid mailbox address"),
    ]:
        bad = admin_cli("agency", "add", "000.00.00.X01", "X", *args, ok=False)
        assert bad.exit_code == 1 and message in bad.output, (args, bad.output)
    missing = admin_cli("agency", "show", "999", ok=False)
    assert missing.exit_code == 1 and "no agency with code '999'" in missing.output


def test_update_edits_lists(admin_cli) -> None:
    _add_health_agency(admin_cli)
    admin_cli(
        "agency",
        "update",
        "000.00.00.H29",
        "--add-domain",
        "yte.hanam.gov.vn",
        "--remove-domain",
        "syt.hanam.gov.vn",
        "--remove-dkim-key",
        "s2024",
        "--not-local",
        "--name",
        "Sở Y tế Hà Nam",
    )
    shown = json.loads(admin_cli("agency", "show", "000.00.00.H29", "--json").stdout)
    assert shown["domains"] == ["soyte.hanam.gov.vn", "yte.hanam.gov.vn"]
    assert shown["dkim_keys"] == {} and shown["name"] == "Sở Y tế Hà Nam"
    actions = [r["action"] for r in json.loads(admin_cli("audit", "list", "--json").stdout)]
    assert actions == ["agency.update", "agency.add"]


def test_dkim_key_from_file_and_explicit_name(tmp_path: Path) -> None:
    record = tmp_path / "key.txt"
    record.write_text('"v=DKIM1; k=rsa; "\n  "p=MIIBabc"\n')
    assert parse_dkim_key(f"sel._domainkey.A.vn:@{record}", ["b.vn"]) == {
        "sel._domainkey.a.vn": "v=DKIM1; k=rsa; p=MIIBabc"
    }
    with pytest.raises(InvalidAgencyError):
        parse_dkim_key("bad selector!:p=x", ["a.vn"])


def test_directory_reads_agencies_and_refreshes(
    admin_cli, db_sessions: sessionmaker[Session]
) -> None:
    directory = DbDirectory(db_sessions, local_domains=["stttt.example.gov.vn"])
    assert directory.agency_for_domain("soyte.hanam.gov.vn") is None  # loads the empty table
    assert directory.is_local_domain("STTTT.example.gov.vn")
    _add_health_agency(admin_cli)
    admin_cli("agency", "add", "000.00.00.H61", "Sở TTTT", "--domain", "local.gov.vn", "--local")
    assert directory.agency_for_domain("soyte.hanam.gov.vn") is None  # cached snapshot
    assert directory.refresh() == 2
    info = directory.agency_for_domain("SOYTE.hanam.gov.vn.")
    assert info is not None and info.code == "000.00.00.H29"
    assert info.allowed_senders == ("203.0.113.7/32", "198.51.100.0/24")
    assert info.dkim_keys["s2024._domainkey.syt.hanam.gov.vn"] == TXT
    assert not directory.is_local_domain("soyte.hanam.gov.vn")
    assert directory.is_local_domain("local.gov.vn")
    assert directory.agency_for_address("vanthu@soyte.hanam.gov.vn") == info
    assert directory.agency_by_code("000.00.00.H61") is not None
    assert [a.code for a in directory.agencies()] == ["000.00.00.H29", "000.00.00.H61"]


async def test_directory_refresher_runs_on_a_timer(
    admin_cli, db_sessions: sessionmaker[Session]
) -> None:
    import asyncio

    directory = DbDirectory(db_sessions, refresh_seconds=0.05)
    task = asyncio.create_task(directory.run_refresher())
    try:
        _add_health_agency(admin_cli)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while directory.agency_by_code("000.00.00.H29") is None:
            assert loop.time() < deadline, "refresher did not pick up the new agency"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert directory.agency_for_domain("syt.hanam.gov.vn") is not None


def test_include_subdomains_covers_subdomains_only_when_set(
    admin_cli, db_sessions: sessionmaker[Session]
) -> None:
    _add_health_agency(admin_cli, "--include-subdomains")
    admin_cli("agency", "add", "000.00.00.H61", "Sở TTTT", "--domain", "stttt.hanam.gov.vn")
    shown = json.loads(admin_cli("agency", "show", "000.00.00.H29", "--json").stdout)
    assert shown["include_subdomains"] is True
    directory = DbDirectory(db_sessions)
    covering = covering_agency(directory, "Mail.HCM.soyte.hanam.gov.vn.")
    assert covering is not None
    assert (covering[0].code, covering[1]) == ("000.00.00.H29", "soyte.hanam.gov.vn")
    assert covering[0].include_subdomains
    # exact-domain agencies vouch for their own domains only
    assert covering_agency(directory, "mail.stttt.hanam.gov.vn") is None
    stttt = covering_agency(directory, "stttt.hanam.gov.vn")
    assert stttt is not None and stttt[0].code == "000.00.00.H61"
    # a sibling under the same parent is not covered
    assert covering_agency(directory, "evil-soyte.hanam.gov.vn") is None
    admin_cli("agency", "update", "000.00.00.H29", "--exact-domains")
    directory.refresh()
    assert covering_agency(directory, "mail.soyte.hanam.gov.vn") is None
    shown = json.loads(admin_cli("agency", "show", "000.00.00.H29", "--json").stdout)
    assert shown["include_subdomains"] is False
    assert "--include-subdomains" in admin_cli("agency", "add", "--help").stdout


async def test_smtp_lookups_take_our_domains_from_the_directory(
    admin_cli, db_sessions: sessionmaker[Session]
) -> None:
    """RCPT TO: whether a domain is ours comes from the directory's snapshot (kept current
    by its refresh); only the mailbox itself is looked up, in a read-only transaction."""
    from sqlalchemy import event

    from mailsvc.lockout import Lockout
    from mailsvc.smtp.lookups import MailboxLookup, RecipientStatus
    from tests.transactions import count_transactions

    admin_cli("agency", "add", "000.00.00.H61", "Sở TTTT", "--domain", "local.gov.vn", "--local")
    directory = DbDirectory(db_sessions, local_domains=["stttt.example.gov.vn"])
    directory.refresh()
    lookup = MailboxLookup(
        db_sessions, ("stttt.example.gov.vn",), Lockout(5, 60, 3600), directory=directory
    )
    engine = db_sessions.kw["bind"]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2].lower()))
    seen = count_transactions(engine)
    assert await lookup.recipient_status("nobody@local.gov.vn") is RecipientStatus.UNKNOWN
    assert await lookup.recipient_status("nobody@elsewhere.example") is RecipientStatus.REMOTE
    assert not any("from agency" in s for s in statements)
    assert (seen.reads, seen.writes) == (1, 0)
    admin_cli("agency", "update", "000.00.00.H61", "--not-local")
    directory.refresh()
    assert await lookup.recipient_status("other@local.gov.vn") is RecipientStatus.REMOTE
