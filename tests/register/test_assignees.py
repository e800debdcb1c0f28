"""Who a document can be assigned to (chuyển xử lý): people of its register's agency only,
by address or by unit; never another agency's mailbox, an administrator, a disabled or a
removed mailbox."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import Agency, Mailbox
from mailsvc.notify.assignment import assignee_mailboxes
from mailsvc.register.models import Register
from mailsvc.register.registers import ensure_register


def test_assignees_come_from_the_documents_agency_only(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        ours = Agency(code="000.00.31.H56", name="Sở TT&TT", domains=["stttt.example.vn"])
        theirs = Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.example.vn"])
        session.add_all([ours, theirs])
        session.flush()
        for address, role, unit, agency, enabled, removed in (
            ("annv.vp@stttt.example.vn", "official", "vp", ours, True, False),
            ("binh.vp@stttt.example.vn", "official", "vp", ours, False, False),
            ("cuong.vp@stttt.example.vn", "official", "vp", ours, True, True),
            ("quantri@stttt.example.vn", "admin", "vp", ours, True, False),
            ("dung.vp@stc.example.vn", "official", "vp", theirs, True, False),
        ):
            session.add(
                Mailbox(
                    address=address,
                    role=role,
                    unit=unit,
                    agency_id=agency.id,
                    enabled=enabled,
                    removed=removed,
                )
            )
        register = ensure_register(session, ours.code, "Sổ văn bản đến", agency_id=ours.id)
        by_domain = ensure_register(session, "stc.example.vn", "Sổ", domain="stc.example.vn")

        def names(assignee: str, where: Register = register) -> list[str]:
            return [m.address for m in assignee_mailboxes(session, assignee, where)]

        assert names("VP") == ["annv.vp@stttt.example.vn"]
        assert names("annv.vp@stttt.example.vn") == ["annv.vp@stttt.example.vn"]
        for other in (
            "dung.vp@stc.example.vn",  # another agency
            "quantri@stttt.example.vn",  # an administrator
            "binh.vp@stttt.example.vn",  # disabled
            "cuong.vp@stttt.example.vn",  # removed
        ):
            assert names(other) == [], other
        # A register of a mail domain (no agency): that domain's people.
        assert names("vp", by_domain) == ["dung.vp@stc.example.vn"]
        assert names("dung.vp@stc.example.vn", by_domain) == ["dung.vp@stc.example.vn"]
        assert names("annv.vp@stttt.example.vn", by_domain) == []
