"""Status transitions: the table, history with who/when/why, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.db.models import AuditEntry
from mailsvc.errors import MailsvcError
from mailsvc.register import workflow
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.registration import register_document
from mailsvc.register.statuses import (
    TRANSITIONS,
    DocumentStatus,
    TransitionError,
    check_transition,
    parse_status,
)
from mailsvc.signatures.report import DocumentOutcome
from tests.register.builders import document

S = DocumentStatus


def _new(sessions: sessionmaker[Session], register: Register, **kw: object) -> int:
    with sessions.begin() as session:
        return register_document(session, register, document(**kw)).document_id


def test_full_path_records_history_and_audit(
    sessions: sessionmaker[Session], register: Register
) -> None:
    doc_id = _new(sessions, register)
    with sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        workflow.assign(
            session,
            row,
            "Phòng Bưu chính",
            actor="cli:vanthu",
            reason="Xử lý gấp",
        )
        workflow.set_status(session, row, S.IN_PROGRESS, actor="cli:truongphong")
        workflow.set_status(session, row, S.DONE, actor="cli:truongphong", reason="Đã trả lời")
    with sessions() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None and row.status == "done" and row.assigned_to == "Phòng Bưu chính"
        steps = [(h.actor, h.from_status, h.to_status, h.reason) for h in row.history]
        assert steps[2:] == [
            ("cli:vanthu", "registered", "assigned", "Xử lý gấp"),
            ("cli:truongphong", "assigned", "in_progress", ""),
            ("cli:truongphong", "in_progress", "done", "Đã trả lời"),
        ]
        assert all(h.at.tzinfo is not None for h in row.history)
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["register.assign", "register.set-status", "register.set-status"]
        assert audit.verify(session) == []


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DONE, S.REGISTERED),
        (S.DELETED, S.REGISTERED),
        (S.REFUSED, S.REGISTERED),
        (S.ARRIVED, S.DONE),
        (S.RECALLED, S.IN_PROGRESS),
    ],
)
def test_invalid_transitions_are_refused(current: S, target: S) -> None:
    with pytest.raises(TransitionError, match=f"from {current.value} .* to {target.value}"):
        check_transition(current, target)


def test_transition_table_is_closed_and_deleted_is_final() -> None:
    assert set(TRANSITIONS) == set(DocumentStatus)
    assert TRANSITIONS[S.DELETED] == frozenset()
    for targets in TRANSITIONS.values():
        assert S.ARRIVED not in targets  # nothing goes back to "arrived"


def test_invalid_change_leaves_no_trace(
    sessions: sessionmaker[Session], register: Register
) -> None:
    doc_id = _new(sessions, register)
    with sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        workflow.set_status(session, row, S.DONE, actor="a")
    with pytest.raises(TransitionError), sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        workflow.set_status(session, row, S.REGISTERED, actor="a", reason="x")
    with sessions() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None and row.status == "done" and len(row.history) == 3


def test_reason_required_for_refusal_recall_and_deletion(
    sessions: sessionmaker[Session], register: Register
) -> None:
    doc_id = _new(sessions, register)
    with pytest.raises(MailsvcError, match="reason is required"), sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        workflow.set_status(session, row, S.REFUSED, actor="a")


def test_assigning_an_unnumbered_document_asks_to_register_it_first(
    sessions: sessionmaker[Session], register: Register
) -> None:
    doc_id = _new(sessions, register, signature_outcome=DocumentOutcome.REFERENCE_ONLY)
    with pytest.raises(MailsvcError, match="register it first"), sessions.begin() as session:
        row = session.get(RegisterDocument, doc_id)
        assert row is not None
        workflow.assign(session, row, "Phòng A", actor="a")


def test_clerk_registering_a_reference_only_document_gives_the_next_number(
    sessions: sessionmaker[Session], register: Register
) -> None:
    valid_id = _new(sessions, register)
    ref_id = _new(sessions, register, signature_outcome=DocumentOutcome.REFERENCE_ONLY)
    with sessions.begin() as session:
        row = session.get(RegisterDocument, ref_id)
        assert row is not None and row.incoming_number is None
        workflow.set_status(
            session, row, S.REGISTERED, actor="cli:vanthu", reason="Lãnh đạo cho vào sổ"
        )
    with sessions() as session:
        valid = session.get(RegisterDocument, valid_id)
        row = session.get(RegisterDocument, ref_id)
        assert valid is not None and row is not None
        assert row.incoming_number == (valid.incoming_number or 0) + 1
        assert row.signature_outcome == "reference_only"  # the legal value is unchanged
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.details["incoming_number"] == row.incoming_number


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("registered", S.REGISTERED),
        ("da_tiep_nhan", S.REGISTERED),
        ("Đã tiếp nhận", S.REGISTERED),
        ("03", S.REGISTERED),
        ("dang_xu_ly", S.IN_PROGRESS),
        ("Thu hồi", S.RECALLED),
        ("xoa", S.DELETED),
        ("tra_lai", S.REFUSED),
    ],
)
def test_status_names(text: str, status: S) -> None:
    assert parse_status(text) is status


def test_unknown_status_is_a_clear_error() -> None:
    with pytest.raises(MailsvcError, match="unknown status 'approved'; expected one of"):
        parse_status("approved")


def test_labels_are_vietnamese() -> None:
    assert S.ARRIVED.label == "Đã đến"
    assert S.ASSIGNED.vietnamese_code == "da_chuyen_xu_ly"
    assert S.DONE.exchange_code == "06" and S.DELETED.exchange_code is None
