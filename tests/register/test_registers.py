"""Which register a copy belongs to (mailsvc.register.registers.register_for_recipient):
the mailbox's agency's, made on first use, else its mail domain's; one query when the
agency's register exists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import Agency, Mailbox
from mailsvc.register.models import Register
from mailsvc.register.registers import (
    INCOMING_NAME,
    RegisterRef,
    recipient_register,
    register_for_recipient,
)


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


def test_acceptance_lookup_reads_the_same_registers(sessions: sessionmaker[Session]) -> None:
    """recipient_register (the acceptance transaction's look-up, Core statements into plain
    values) answers as register_for_recipient for every kind of recipient, makes a missing
    register as it does, and needs one statement once an agency's register exists."""
    with sessions.begin() as session:
        agency = Agency(code="000.00.32.H56", name="Sở Tài chính", local=True)
        other = Agency(code="000.00.33.H56", name="Sở Y tế", local=True)
        session.add_all([agency, other])
        session.flush()
        session.add(Mailbox(address="vanthu@stc.example.vn", role="clerk", agency_id=agency.id))
        session.add(Mailbox(address="lanhdao@syt.example.vn", role="leader", agency_id=other.id))
        session.add(Mailbox(address="khach@congty.example.vn", role="official"))
    cases = [
        (" VanThu@STC.example.vn ", "clerk"),  # agency, register made on first use
        ("vanthu@stc.example.vn", "clerk"),  # agency, register found
        ("lanhdao@syt.example.vn", "leader"),
        ("khach@congty.example.vn", "official"),  # no agency: the domain's register, made
        ("ai-do@congty.example.vn", None),  # no mailbox: the domain's register, found
        ("ai-do@moi.example.vn", None),  # no mailbox, new domain
    ]
    for address, role in cases:
        with sessions.begin() as session:
            ref, found_role = recipient_register(session, address)
        with sessions.begin() as session:
            register, mailbox = register_for_recipient(session, address)
            assert ref == RegisterRef(
                register.id, register.code, register.agency_id, register.domain
            ), address
            assert found_role == role == (mailbox.role if mailbox is not None else None)
    with sessions.begin() as session:
        assert ref.code == "moi.example.vn" and ref.agency_id is None
        made = session.scalars(select(Register).where(Register.code == "000.00.32.H56")).one()
        assert made.name == f"{INCOMING_NAME} - Sở Tài chính" and made.agency_id == agency.id
        assert session.scalar(select(func.count()).select_from(Register)) == 4
    statements = _statements(sessions)
    with sessions.begin() as session:
        ref, role = recipient_register(session, "vanthu@stc.example.vn")
    assert len(statements) == 1 and ref.code == "000.00.32.H56" and role == "clerk"
