"""Which register a copy belongs to (mailsvc.register.registers.register_for_recipient):
the mailbox's agency's, made on first use, else its mail domain's; one query when the
agency's register exists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import Agency, Mailbox
from mailsvc.register.registers import INCOMING_NAME, register_for_recipient


def _statements(sessions: sessionmaker[Session]) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            seen.append(statement)

    event.listen(sessions.kw["bind"], "before_cursor_execute", before)
    return seen


def test_agency_register_then_domain_register(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        agency = Agency(code="000.00.31.H56", name="Sở Thông tin và Truyền thông", local=True)
        session.add(agency)
        session.flush()
        session.add(Mailbox(address="vanthu@stttt.example.vn", role="clerk", agency_id=agency.id))
        session.add(Mailbox(address="khach@congty.example.vn", role="clerk"))
    with sessions.begin() as session:  # first use: the agency's register is made
        register, mailbox = register_for_recipient(session, " VanThu@STTTT.example.vn ")
        assert mailbox is not None and mailbox.address == "vanthu@stttt.example.vn"
        assert (register.code, register.agency_id) == ("000.00.31.H56", agency.id)
        assert register.name == f"{INCOMING_NAME} - Sở Thông tin và Truyền thông"
        made = register.id
    statements = _statements(sessions)
    with sessions.begin() as session:  # then found, with its mailbox, in one query
        register, mailbox = register_for_recipient(session, "vanthu@stttt.example.vn")
        assert register.id == made and mailbox is not None and mailbox.role == "clerk"
    assert len(statements) == 1, statements
    with sessions.begin() as session:  # a mailbox of no agency: its domain's register
        register, mailbox = register_for_recipient(session, "khach@congty.example.vn")
        assert mailbox is not None
        assert (register.code, register.domain, register.agency_id) == (
            "congty.example.vn",
            "congty.example.vn",
            None,
        )
    with sessions.begin() as session:  # an address with no mailbox: the same
        register, mailbox = register_for_recipient(session, "ai-do@congty.example.vn")
        assert mailbox is None and register.code == "congty.example.vn"
