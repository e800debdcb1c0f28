"""The hash-chained audit log: `mailsvc audit list | verify` and tampering detection."""

from __future__ import annotations

import json
import threading

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.db.models import AuditEntry

DOMAIN = "stttt.example.gov.vn"


def _make_history(admin_cli) -> None:
    admin_cli("agency", "add", "000.00.00.H61", "Sở Thông tin và Truyền thông", "--domain", DOMAIN)
    admin_cli("mailbox", "add", "--name", "Nguyễn Văn An", "--unit", "stttt")
    admin_cli("mailbox", "reset-password", f"annv.stttt@{DOMAIN}")
    admin_cli("mailbox", "disable", f"annv.stttt@{DOMAIN}")


def _verify(admin_cli) -> tuple[int, dict]:
    result = admin_cli("audit", "verify", "--json", ok=False)
    return result.exit_code, json.loads(result.stdout)


def test_intact_log_verifies_and_lists(admin_cli) -> None:
    _make_history(admin_cli)
    code, report = _verify(admin_cli)
    assert code == 0 and report["ok"] and report["entries"] == 4 and report["problems"] == []
    assert "audit log intact: 4 entries" in admin_cli("audit", "verify").stdout
    rows = json.loads(admin_cli("audit", "list", "--json").stdout)
    assert [r["action"] for r in rows] == [
        "mailbox.disable",
        "mailbox.reset-password",
        "mailbox.add",
        "agency.add",
    ]
    assert rows[-1]["details"]["name"] == "Sở Thông tin và Truyền thông"
    assert rows[0]["at"].endswith("+07:00") and len(rows[0]["hash"]) == 64
    only = json.loads(admin_cli("audit", "list", "--action", "agency.", "--json").stdout)
    assert [r["target"] for r in only] == ["000.00.00.H61"]
    assert "mailbox.disable" in admin_cli("audit", "list").stdout


def test_altered_entry_is_reported(admin_cli, db_sessions: sessionmaker[Session]) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        second = s.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(1)).first()
        assert second is not None
        s.execute(update(AuditEntry).where(AuditEntry.id == second.id).values(actor="cli:ghost"))
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2 and not report["ok"]
    assert report["problems"] == [f"entry #{second.id}: content does not match its hash (altered)"]
    plain = admin_cli("audit", "verify", ok=False)
    assert plain.exit_code == 2 and "TAMPERED" in plain.stdout


def test_altered_details_with_recomputed_hash_break_the_chain(
    admin_cli, db_sessions: sessionmaker[Session]
) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        first = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).first()
        assert first is not None
        forged = {**first.details, "name": "Cơ quan giả"}
        new_hash = audit.entry_hash(
            at=first.at,
            actor=first.actor,
            action=first.action,
            target=first.target,
            details=forged,
            prev_hash=first.prev_hash,
        )
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.id == first.id)
            .values(details=forged, hash=new_hash)
        )
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2
    assert any("does not follow the previous entry" in p for p in report["problems"])


def test_deleted_middle_entry_is_reported(admin_cli, db_sessions: sessionmaker[Session]) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        ids = list(s.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))
        s.execute(delete(AuditEntry).where(AuditEntry.id == ids[1]))
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2
    assert f"entry #{ids[2]}: does not follow the previous entry" in report["problems"][0]
    assert "1 deleted" in report["problems"][-1]


def test_deleted_last_entry_is_reported(admin_cli, db_sessions: sessionmaker[Session]) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        last = s.scalar(select(func.max(AuditEntry.id)))
        s.execute(delete(AuditEntry).where(AuditEntry.id == last))
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2
    assert report["problems"] == ["the log holds 3 entries but 4 were recorded (1 deleted)"]


def test_replaced_last_entry_is_reported(admin_cli, db_sessions: sessionmaker[Session]) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert last is not None
        new_hash = audit.entry_hash(
            at=last.at,
            actor=last.actor,
            action="mailbox.enable",
            target=last.target,
            details=last.details,
            prev_hash=last.prev_hash,
        )
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.id == last.id)
            .values(action="mailbox.enable", hash=new_hash)
        )
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2
    assert report["problems"] == [
        "the newest entry is not the one last recorded (altered or replaced)"
    ]


def test_wiped_log_is_reported(admin_cli, db_sessions: sessionmaker[Session]) -> None:
    _make_history(admin_cli)
    with db_sessions() as s:
        s.execute(text("DELETE FROM audit_log"))
        s.commit()
    code, report = _verify(admin_cli)
    assert code == 2 and "4 deleted" in report["problems"][0]


def test_concurrent_writers_keep_one_chain(db_sessions: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                with db_sessions() as s:
                    audit.record(s, f"writer{n}", "test.write", f"t{i}", {"i": i})
                    s.commit()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with db_sessions() as s:
        assert audit.verify(s) == []
        assert audit.head_hash(s)[0] == 20
