"""`mailsvc register set-status | assign | refuse-recall` queue the sender's status notice
in the same transaction (04, 05, 06, 15 with the voided copy, 16); a sender that was not
authenticated never gets one. The server's outbound worker sends them (see
tests/e2e/test_exchange_e2e.py); here the queue rows are read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import AuditEntry, MessageRecord
from mailsvc.notify.exchange import read_status
from mailsvc.outbound.models import VOID_COPY, OutboundMessage
from mailsvc.register import workflow
from mailsvc.register.models import RegisterDocument
from mailsvc.register.registers import ensure_register
from mailsvc.register.registration import DeliveryInput, register_document
from tests.cli.conftest import Invoke
from tests.register.builders import document

SENDER = "vanthu@stc.daknong.gov.vn"
CLERK = "vanthu@stttt.daknong.gov.vn"


def _seed(sessions: sessionmaker[Session], *, authenticated: bool) -> int:
    """A registered document whose message passed (or failed) DMARC."""
    status = "pass" if authenticated else "fail"
    with sessions.begin() as session:
        record = MessageRecord(
            queue_id="Q0000000001",
            message_key="k" * 64,
            message_id="<35@stc.daknong.gov.vn>",
            sha256="0" * 64,
            size=100,
            mail_from=SENDER,
            recipient=CLERK,
            direction="inbound",
            client_ip="192.0.2.10",
            received_at=datetime(2026, 3, 2, 1, 15, tzinfo=UTC),
            action="deliver",
            verdict={
                "findings": [
                    {"stage": "authentication", "status": status, "reason": f"dmarc-{status}"}
                ]
            },
            state="delivered",
        )
        session.add(record)
        session.flush()
        register = ensure_register(session, "000.00.31.H56", "Sổ đăng ký văn bản đến - Sở TT&TT")
        result = register_document(
            session,
            register,
            document(
                message_id="<35@stc.daknong.gov.vn>",
                number_notation="35/STC-VP",
                deliveries=(
                    DeliveryInput(CLERK, queue_id="Q0000000001", message_record_id=record.id),
                ),
            ),
        )
        return result.document_id


def _queued(sessions: sessionmaker[Session]) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def _status(row: OutboundMessage) -> dict[str, object]:
    message = message_from_bytes(row.data, policy=default_policy)
    [part] = [p for p in message.walk() if p.get_content_type() == "application/json"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    value = json.loads(payload)
    assert isinstance(value, dict)
    return value


def test_status_changes_queue_notices_for_the_sender(
    admin_cli: Invoke, db_sessions: sessionmaker[Session]
) -> None:
    doc_id = _seed(db_sessions, authenticated=True)
    admin_cli("register", "assign", str(doc_id), "--to", "Phòng Kế hoạch", "--reason", "Gấp")
    admin_cli("register", "set-status", str(doc_id), "in_progress")
    out = admin_cli("register", "set-status", str(doc_id), "done").output
    assert f"queued: notice-06 to {SENDER}" in out
    rows = _queued(db_sessions)
    assert [(r.kind, r.recipient, r.state) for r in rows] == [
        ("notice-04", SENDER, "queued"),
        ("notice-05", SENDER, "queued"),
        ("notice-06", SENDER, "queued"),
    ]
    assigned = _status(rows[0])
    assert assigned["status_code"] == "04" and assigned["message_id"] == "<35@stc.daknong.gov.vn>"
    assert assigned["number_notation"] == "35/STC-VP" and assigned["incoming_number"] == "1"
    assert assigned["reason"] is None  # the instruction to the unit stays inside
    assert str(assigned["time"]).endswith("+07:00")
    notice = message_from_bytes(rows[2].data, policy=default_policy)
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["In-Reply-To"] == "<35@stc.daknong.gov.vn>"
    text = notice.get_body(("plain",))
    assert text is not None and "THÔNG BÁO VĂN BẢN ĐÃ ĐƯỢC XỬ LÝ XONG" in text.get_content()


def test_recall_accepted_voids_the_copy_and_refused_goes_back(
    admin_cli: Invoke, db_sessions: sessionmaker[Session]
) -> None:
    doc_id = _seed(db_sessions, authenticated=True)
    with db_sessions.begin() as session:
        doc = session.get(RegisterDocument, doc_id)
        assert doc is not None
        workflow.request_recall(session, doc, actor=f"mail:{SENDER}", reason="Sai thể thức")

    # Refusing is an administrator's override, never a clerk's everyday choice.
    plain = admin_cli("register", "refuse-recall", str(doc_id), "--reason", "x", ok=False)
    assert plain.exit_code == 1 and "--admin-override" in plain.output
    # Refused: back to "registered", status 16 with the reason, and audited as an override.
    out = admin_cli(
        "register", "refuse-recall", str(doc_id), "--admin-override",
        "--reason", "Văn bản đã được xử lý xong",
    ).output  # fmt: skip
    with db_sessions() as session:
        [override] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "register.recall-override")
        ).all()
        assert override.details["reason"] == "Văn bản đã được xử lý xong"
    assert "back to registered" in out and f"notice-16 to {SENDER}" in out
    [refused] = _queued(db_sessions)
    report = read_status(message_from_bytes(refused.data))
    assert report is not None and report.status_code == "16"
    assert report.reason == "Văn bản đã được xử lý xong"

    # A second request, accepted: 15 and the delivered copy is moved.
    with db_sessions.begin() as session:
        doc = session.get(RegisterDocument, doc_id)
        assert doc is not None
        workflow.request_recall(session, doc, actor=f"mail:{SENDER}", reason="")
    admin_cli("register", "set-status", str(doc_id), "recalled", "--reason", "Đồng ý thu hồi")
    rows = _queued(db_sessions)[1:]
    assert sorted((r.kind, r.recipient, r.about) for r in rows) == [
        ("notice-15", SENDER, "<35@stc.daknong.gov.vn>"),
        (VOID_COPY, CLERK, "Q0000000001"),
    ]
    with db_sessions() as session:
        doc = session.get(RegisterDocument, doc_id)
        assert doc is not None and doc.status == "recalled"
        trail = [(h.from_status, h.to_status) for h in doc.history][-4:]
        assert trail == [
            ("registered", "recall_requested"),
            ("recall_requested", "registered"),
            ("registered", "recall_requested"),
            ("recall_requested", "recalled"),
        ]
    # Nothing to refuse any more.
    result = admin_cli(
        "register", "refuse-recall", str(doc_id), "--admin-override", "--reason", "x", ok=False
    )
    assert result.exit_code == 1 and "no recall request" in result.output


@pytest.mark.parametrize("target", ["in_progress", "done"])
def test_no_notice_for_an_unauthenticated_sender(
    admin_cli: Invoke, db_sessions: sessionmaker[Session], target: str
) -> None:
    doc_id = _seed(db_sessions, authenticated=False)
    out = admin_cli("register", "set-status", str(doc_id), target).output
    assert "queued" not in out
    assert _queued(db_sessions) == []
