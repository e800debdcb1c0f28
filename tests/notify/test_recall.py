"""Status messages and recall: reading a status message (table), every notice template,
and who may recall a document (only its authenticated sender's domain)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.db.models import MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.message import Direction, InboundMessage
from mailsvc.notify.exchange import HEADINGS, STATUS_LABELS, read_status
from mailsvc.notify.notices import NoticeComposer, StatusNotice
from mailsvc.notify.recall import RecallRecorder
from mailsvc.outbound.models import OutboundMessage
from mailsvc.register.models import RegisterDocument
from mailsvc.register.registers import ensure_register
from mailsvc.register.registration import DeliveryInput, register_document
from mailsvc.verdict import Action, Finding, Status, Verdict
from tests.register.builders import document

ORIGINAL = "<35@stc.daknong.gov.vn>"
SENDER = "vanthu@stc.daknong.gov.vn"
CLERK = "vanthu@stttt.daknong.gov.vn"


def _composer(tmp_path: Path) -> NoticeComposer:
    return NoticeComposer(
        templates_dir(Settings(home=tmp_path)) / "notices",
        hostname="mail.stttt.daknong.gov.vn",
        domain="stttt.daknong.gov.vn",
    )


def _status_mail(payload: object, content_type: str = "application/json") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg.set_content("Đề nghị thu hồi văn bản.")
    maintype, subtype = content_type.split("/")
    msg.add_attachment(
        json.dumps(payload).encode(), maintype=maintype, subtype=subtype, filename="status.json"
    )
    return msg


@pytest.mark.parametrize(
    ("payload", "content_type", "expected"),
    [
        ({"message_id": ORIGINAL, "status_code": "13", "reason": "Sai"}, "application/json", "13"),
        ({"message_id": ORIGINAL, "status_code": "03"}, "application/json", "03"),
        ({"message_id": ORIGINAL, "status_code": "99"}, "application/json", None),
        ({"status_code": "13"}, "application/json", None),
        (["13", ORIGINAL], "application/json", None),
        ({"message_id": ORIGINAL, "status_code": "13"}, "application/octet-stream", None),
    ],
)
def test_read_status(payload: object, content_type: str, expected: str | None) -> None:
    report = read_status(_status_mail(payload, content_type))
    assert (report.status_code if report else None) == expected
    if report is not None:
        assert report.message_id == ORIGINAL


def test_every_notice_and_template_renders(tmp_path: Path) -> None:
    composer = _composer(tmp_path)
    for code in STATUS_LABELS:
        raw = composer.status_message(
            StatusNotice(
                recipient=SENDER,
                status_code=code,
                message_id=ORIGINAL,
                subject="V/v triển khai chữ ký số",
                time=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
                incoming_number="7",
                reason="Lý do <thử>",  # escaped in HTML
            )
        )
        notice = message_from_bytes(raw, policy=default_policy)
        report = read_status(notice)
        assert report is not None and report.status_code == code
        html = notice.get_body(("html",))
        assert html is not None and "Lý do &lt;thử&gt;" in html.get_content()
        plain = notice.get_body(("plain",))
        assert plain is not None and HEADINGS[code] in plain.get_content()
    values = {
        "time": "2026-11-21T08:00:00+07:00", "queue_id": "Q1", "sender": SENDER,
        "client_ip": "192.0.2.1", "recipients": [CLERK], "signature": "Eicar", "sha256": "0",
        "outbreak": True, "outbreak_count": 3, "outbreak_window": "10 phút", "level": "MẬT",
        "rule": "r", "where": "body", "kind": "notice-03", "recipient": SENDER, "attempts": 5,
        "queued_at": "2026-11-21T08:00:00+07:00", "error": "550", "queue_row": 1,
        "clerk": CLERK, "subject": "s", "incoming_number": "1/2026", "number_notation": "",
        "message_id": ORIGINAL, "reason": "", "document_ref": "1/2026", "hostname": "h",
        "service": "dovecot", "failures": 5,
    }  # fmt: skip
    for template in sorted(composer.env.list_templates()):
        if template.endswith(".txt.j2") and not template.startswith("notice"):
            assert composer.render(template, values).strip()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _seed(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        record = MessageRecord(
            queue_id="Q1",
            message_key="k" * 64,
            message_id=ORIGINAL,
            sha256="0" * 64,
            size=1,
            mail_from=SENDER,
            recipient=CLERK,
            direction="inbound",
            action="deliver",
            state="delivered",
        )
        session.add(record)
        session.flush()
        register = ensure_register(session, "000.00.31.H56", "Sổ đăng ký văn bản đến")
        return register_document(
            session,
            register,
            document(
                message_id=ORIGINAL,
                sender=SENDER,
                deliveries=(DeliveryInput(CLERK, queue_id="Q1", message_record_id=record.id),),
            ),
        ).document_id


def _recall(
    mail_from: str, from_field: str, passed: tuple[str, ...]
) -> tuple[InboundMessage, Verdict]:
    msg = _status_mail({"message_id": ORIGINAL, "status_code": "13", "reason": "Sai thể thức"})
    del msg["From"]
    msg["From"] = from_field
    inbound = InboundMessage(
        queue_id="Q2",
        mail_from=mail_from,
        rcpt_tos=(CLERK,),
        raw=msg.as_bytes(),
        received_at=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
        client_ip="192.0.2.10",
        direction=Direction.INBOUND,
    )
    findings = tuple(Finding("authentication", Status.PASS, reason) for reason in passed)
    return inbound, Verdict("Q2", findings, Action.DELIVER)


@pytest.mark.parametrize(
    ("mail_from", "from_field", "passed", "recalled"),
    [
        (SENDER, SENDER, ("spf-pass", "dmarc-pass"), True),  # the sender itself
        ("", "postmaster@stc.daknong.gov.vn", ("dkim-pass", "dmarc-pass"), True),  # its system
        (SENDER, SENDER, (), False),  # nothing authenticated: maybe forged
        (SENDER, SENDER, ("dkim-pass",), False),  # DKIM of some domain, not aligned
        ("x@other.gov.vn", SENDER, ("spf-pass",), False),  # another agency's SPF
    ],
)
def test_only_the_authenticated_sender_domain_may_recall(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    mail_from: str,
    from_field: str,
    passed: tuple[str, ...],
    recalled: bool,
) -> None:
    doc_id = _seed(sessions)
    recorder = RecallRecorder(_composer(tmp_path))
    msg, verdict = _recall(mail_from, from_field, passed)
    with sessions.begin() as session:
        notes = recorder.on_accept(session, msg, verdict, [])
    with sessions() as session:
        doc = session.get(RegisterDocument, doc_id)
        assert doc is not None
        queued = session.scalars(select(OutboundMessage)).all()
        if recalled:
            assert doc.status == "recall_requested"
            assert doc.history[-1].reason == "Sai thể thức"
            assert [(r.kind, r.recipient) for r in queued] == [("alert-recall-requested", CLERK)]
            assert notes.headers[0][0] == "X-Mailsvc-Recall"
        else:
            assert doc.status == "registered" and queued == [] and notes.headers == []


def test_a_subject_that_imitates_the_boundaries_cannot_split_the_notice(tmp_path: Path) -> None:
    """The notice's multipart boundaries are set, not searched for: text that looks like
    them (the original subject and the reason come from the sender) stays inside its part."""
    composer = _composer(tmp_path)
    first = composer.status_message(
        StatusNotice(SENDER, "03", ORIGINAL, "Công văn", datetime(2026, 12, 5, tzinfo=UTC), "7")
    )
    boundary = message_from_bytes(first, policy=default_policy).get_boundary()
    assert boundary is not None and boundary.startswith("=_mailsvc_")
    hostile = f"\r\n--{boundary}\r\n--=_mailsvc_\r\nContent-Type: text/html\r\n\r\n<b>x</b>"
    when = datetime(2026, 12, 5, tzinfo=UTC)
    notice = StatusNotice(SENDER, "05", ORIGINAL, hostile, when, reason=hostile)
    raw = composer.status_message(notice)
    parsed = message_from_bytes(raw, policy=default_policy)
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/json",
    ]  # fmt: skip
    assert parsed.get_boundary() != boundary  # a new one per notice
    status = read_status(parsed)
    assert status is not None and status.status_code == "05"
    text = next(p for p in parsed.walk() if p.get_content_type() == "text/plain")
    assert "--=_mailsvc_" in text.get_content()
