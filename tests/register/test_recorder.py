"""RegisterRecorder inside the real acceptance unit of work: register rows, header
fields and flags on the delivered copy, duplicates and refusals.

The mailbox engine is an in-memory sink standing in for Dovecot's LMTP (the SMTP
end-to-end tests deliver through the real Dovecot)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.delivery import Acceptance
from mailsvc.documents.metadata import DocumentMetadata, extract_metadata
from mailsvc.message import Direction, InboundMessage
from mailsvc.outcome import Accepted, Entry
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.recorder import RegisterRecorder, attachments_of
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
    Indication,
    SignatureFormat,
    SignatureResult,
)
from mailsvc.smtp import replies
from mailsvc.store.blobs import BlobStore
from mailsvc.verdict import Action, Finding, Status, Verdict
from tests.documents.metadata_patterns import CASES
from tests.e2e.conftest import wait_for

LOCAL = "stttt.daknong.gov.vn"
SENDER = "vanthu@stc.daknong.gov.vn"
PDF = b"%PDF-1.7\n% Cong van 12/STC-VP\n" + b"x" * 2048
RECEIVED = datetime(2026, 3, 2, 1, 15, tzinfo=UTC)


class MemoryMailboxes:
    """Collects delivered copies and flags (stands in for Dovecot)."""

    def __init__(self) -> None:
        self.copies: list[tuple[str, str, bytes]] = []
        self.flags: list[tuple[str, tuple[str, ...]]] = []

    async def deliver(
        self, recipient: str, data: bytes, folder: str = "INBOX", *, sender: str = ""
    ) -> None:
        self.copies.append((recipient, folder, data))

    async def add_flags(
        self,
        address: str,
        flags: Sequence[str],
        *,
        queue_id: str | None = None,
        folder: str = "INBOX",
    ) -> int:
        self.flags.append((address, tuple(flags)))
        return 1

    def headers(self, index: int = -1) -> EmailMessage:
        parsed = BytesHeaderParser(policy=default).parsebytes(self.copies[index][2])
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def directory(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ours = Agency(
            code="000.00.31.H56", name="Sở Thông tin và Truyền thông", domains=[LOCAL], local=True
        )
        theirs = Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.daknong.gov.vn"])
        session.add_all([ours, theirs])
        session.flush()
        for name, role in (("vanthu", "clerk"), ("lanhdao", "leader"), ("annv.stttt", "official")):
            session.add(Mailbox(address=f"{name}@{LOCAL}", role=role, agency_id=ours.id))


@pytest.fixture
def mailboxes() -> MemoryMailboxes:
    return MemoryMailboxes()


@pytest.fixture
def acceptance(
    sessions: sessionmaker[Session], blobs: BlobStore, mailboxes: MemoryMailboxes, directory: None
) -> Acceptance:
    return Acceptance(
        sessions,
        blobs,
        mailboxes,
        hostname=f"mail.{LOCAL}",
        recorders=[RegisterRecorder(blobs)],
        flagger=mailboxes,
    )


def make_message(
    *,
    attach: bool = True,
    rcpt: tuple[str, ...] = (f"vanthu@{LOCAL}",),
    subject: str = "Công văn 12/STC-VP V/v triển khai chữ ký số",
    message_id: str = "<cv12@stc.daknong.gov.vn>",
    queue_id: str = "Q0000001",
    direction: Direction = Direction.INBOUND,
    sender: str = SENDER,
    pdf: bytes = PDF,
) -> InboundMessage:
    mail = EmailMessage()
    mail["From"] = f"Văn thư Sở Tài chính <{sender}>"
    mail["To"] = ", ".join(rcpt)
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail.set_content("Kính gửi Sở Thông tin và Truyền thông,\nSở Tài chính gửi công văn.\n")
    if attach:
        mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="CV 12-STC.pdf")
    return InboundMessage(
        queue_id=queue_id,
        mail_from=sender,
        rcpt_tos=rcpt,
        raw=mail.as_bytes(),
        received_at=RECEIVED,
        client_ip="192.0.2.10",
        client_helo="mail.stc.daknong.gov.vn",
        direction=direction,
        authenticated_as=sender if direction is Direction.SUBMISSION else None,
    )


def report(outcome: DocumentOutcome = DocumentOutcome.VALID, pdf: bytes = PDF) -> Finding:
    signatures = (
        SignatureResult(
            format=SignatureFormat.PDF,
            indication=Indication.TOTAL_PASSED,
            subindication=None,
            signer_name="Nguyễn Văn An",
            organisation="Sở Tài chính",
            kind=CertificateKind.PERSONAL,
        ),
        SignatureResult(
            format=SignatureFormat.PDF,
            indication=Indication.TOTAL_PASSED,
            subindication=None,
            signer_name="Sở Tài chính",
            organisation="Sở Tài chính",
            kind=CertificateKind.ORGANISATION,
        ),
    )
    payload = DocumentSignatureReport(
        document="CV 12-STC.pdf",
        sha256=hashlib.sha256(pdf).hexdigest(),
        outcome=outcome,
        reason="signed" if outcome is DocumentOutcome.VALID else "signature-invalid",
        signatures=signatures if outcome is DocumentOutcome.VALID else (),
        sender_agency="000.00.32.H56",
    )
    status = {DocumentOutcome.VALID: Status.PASS, DocumentOutcome.INVALID: Status.FAIL}.get(
        outcome, Status.NONE
    )
    return Finding(stage="signatures", status=status, reason=payload.reason, payload=payload)


def metadata(urgency: str = "Khẩn") -> Finding:
    payload = DocumentMetadata(
        issuing_agency="SỞ TÀI CHÍNH",
        number_notation="12/STC-VP",
        issued_date=date(2026, 2, 27),
        doc_type="Công văn",
        abstract="V/v triển khai chữ ký số",
        urgency=urgency,
        signer="Nguyễn Văn An",
        deadline=date(2026, 3, 10),
        agency_code="000.00.32.H56",
        agency_name="Sở Tài chính",
        sha256=hashlib.sha256(PDF).hexdigest(),  # read from the main file
    )
    return Finding(stage="metadata", status=Status.PASS, reason="found", payload=payload)


def deliver_verdict(queue_id: str, *findings: Finding) -> Verdict:
    return Verdict(queue_id=queue_id, findings=findings, action=Action.DELIVER)


def _entries(sessions: sessionmaker[Session]) -> list[RegisterDocument]:
    with sessions() as session:
        rows = list(session.scalars(select(RegisterDocument).order_by(RegisterDocument.id)))
        for row in rows:
            _ = (row.attachments, row.deliveries, row.history, row.register)
        return rows


async def test_valid_urgent_document_is_numbered_and_the_copy_says_so(
    acceptance: Acceptance,
    mailboxes: MemoryMailboxes,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
) -> None:
    msg = make_message()
    outcome = await acceptance.accept(msg, deliver_verdict(msg.queue_id, report(), metadata()))
    assert isinstance(outcome, Accepted) and not outcome.duplicate
    assert outcome.entries == (Entry("000.00.31.H56", "registered", 1, "1/2026"),)
    headers = mailboxes.headers()
    assert headers["X-Mailsvc-Register"] == "000.00.31.H56; status=registered; number=1/2026"
    assert headers["X-Mailsvc-Register-Number"] == "1/2026"
    assert headers["X-Mailsvc-Signature"] == "valid"
    assert headers["X-Mailsvc-Urgency"] == "urgent"
    assert mailboxes.flags == [(f"vanthu@{LOCAL}", ("\\Flagged",))]
    [entry] = _entries(sessions)
    assert entry.register.code == "000.00.31.H56"
    assert (entry.incoming_number, entry.year, entry.status) == (1, 2026, "registered")
    assert (entry.agency_code, entry.agency_name) == ("000.00.32.H56", "Sở Tài chính")
    assert entry.number_notation == "12/STC-VP" and entry.doc_type == "Công văn"
    assert entry.signer == "Nguyễn Văn An" and entry.urgency == "urgent"
    assert entry.deadline == date(2026, 3, 10) and entry.issued_date == date(2026, 2, 27)
    assert entry.sender == SENDER and entry.recipient == f"vanthu@{LOCAL}"
    assert entry.message_record_id is not None
    [attachment] = entry.attachments
    assert (attachment.filename, attachment.role) == ("CV 12-STC.pdf", "main")
    assert blobs.get(attachment.attachment.sha256) == PDF


async def test_same_message_twice_is_delivered_and_registered_once(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    msg = make_message()
    verdict = deliver_verdict(msg.queue_id, report(), metadata())
    await acceptance.accept(msg, verdict)
    again = replace(msg, queue_id="Q0000002")
    outcome = await acceptance.accept(again, deliver_verdict(again.queue_id, report(), metadata()))
    assert outcome == Accepted("Q0000001", duplicate=True)
    assert replies.for_outcome(outcome) == "250 2.0.0 OK already received as Q0000001"
    assert len(mailboxes.copies) == 1
    assert len(_entries(sessions)) == 1


HOLD_MARKS = {
    "sqlite": [
        "CREATE TRIGGER hold_marks BEFORE UPDATE OF state ON message "
        "WHEN NEW.state = 'delivered' BEGIN SELECT RAISE(ABORT, 'marks held'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION hold_marks() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'marks held'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER hold_marks BEFORE UPDATE OF state ON message FOR EACH ROW "
        "WHEN (NEW.state = 'delivered') EXECUTE FUNCTION hold_marks()",
    ],
}
RELEASE_MARKS = {
    "sqlite": ["DROP TRIGGER hold_marks"],
    "postgresql": ["DROP TRIGGER hold_marks ON message", "DROP FUNCTION hold_marks()"],
}


def _run(sessions: sessionmaker[Session], statements: dict[str, list[str]]) -> None:
    with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        for statement in statements[dialect]:
            session.execute(text(statement))


async def test_a_copy_whose_mark_is_not_written_is_not_delivered_again(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    """The 250 does not wait for the row's 'delivered' mark. While it is not written (here
    the database refuses it), the same message to more recipients must not bring the first
    recipient a second copy; once the database takes marks again, the row is marked."""
    _run(sessions, HOLD_MARKS)
    first = make_message()
    await acceptance.accept(first, deliver_verdict(first.queue_id, report(), metadata()))
    await acceptance.drain()  # the mark was tried, and refused
    wider = replace(first, rcpt_tos=(f"vanthu@{LOCAL}", f"lanhdao@{LOCAL}"), queue_id="Q0000003")
    await acceptance.accept(wider, deliver_verdict(wider.queue_id, report(), metadata()))
    assert [c[0] for c in mailboxes.copies] == [f"vanthu@{LOCAL}", f"lanhdao@{LOCAL}"]
    await acceptance.drain()
    with sessions() as session:
        states = dict(session.execute(select(MessageRecord.recipient, MessageRecord.state)).all())
    assert states == {f"vanthu@{LOCAL}": "stored", f"lanhdao@{LOCAL}": "stored"}
    _run(sessions, RELEASE_MARKS)
    await acceptance.accept(wider, deliver_verdict(wider.queue_id, report(), metadata()))
    await acceptance.drain()
    assert len(mailboxes.copies) == 2
    with sessions() as session:
        assert set(session.scalars(select(MessageRecord.state))) == {"delivered"}


async def test_a_refused_mark_is_written_once_the_database_takes_it_again(
    acceptance: Acceptance,
    mailboxes: MemoryMailboxes,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database refuses the 'delivered' mark (down, locked: here a trigger), then takes
    marks again: the row is marked within seconds by the marker's retries, without a new
    message, a restart or repair's minute."""
    _run(sessions, HOLD_MARKS)
    first = make_message()
    await acceptance.accept(first, deliver_verdict(first.queue_id, report(), metadata()))
    assert len(mailboxes.copies) == 1

    def state() -> str:
        with sessions() as session:
            return str(session.scalar(select(MessageRecord.state)))

    await wait_for(lambda: "could not mark 1 delivered row(s)" in caplog.text)  # refused
    assert state() == "stored"
    _run(sessions, RELEASE_MARKS)
    await wait_for(lambda: state() == "delivered", timeout=15)
    assert len(mailboxes.copies) == 1  # marked, not delivered again


async def test_the_next_acceptance_carries_the_delivered_marks_in_its_transaction(
    sessions: sessionmaker[Session], blobs: BlobStore, mailboxes: MemoryMailboxes, directory: None
) -> None:
    """Under load the 'delivered' marks cost no transaction of their own: the next
    message's transaction writes the marks queued since the last one. Here the marker
    waits a minute, so only the second acceptance can have marked the first row."""
    acceptance = Acceptance(
        sessions,
        blobs,
        mailboxes,
        hostname=f"mail.{LOCAL}",
        recorders=[RegisterRecorder(blobs)],
        mark_fold_wait=60,
        busy=lambda: 10,  # as under load: more messages on their way
    )
    commits: list[int] = []
    engine = sessions.kw["bind"]
    listener = lambda conn: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        first = make_message(attach=False, message_id="<one@stc.daknong.gov.vn>")
        second = make_message(
            attach=False, message_id="<two@stc.daknong.gov.vn>", queue_id="Q0000002"
        )
        await acceptance.accept(first, deliver_verdict(first.queue_id))
        await acceptance.accept(second, deliver_verdict(second.queue_id))
        with sessions() as session:
            rows = session.execute(select(MessageRecord.queue_id, MessageRecord.state)).all()
        states = dict(rows)
        assert states == {"Q0000001": "delivered", "Q0000002": "stored"}
        assert len(commits) == 2  # the two messages' transactions, nothing else
        await acceptance.drain()  # the marker writes the last mark at once
        with sessions() as session:
            assert set(session.scalars(select(MessageRecord.state))) == {"delivered"}
        assert len(commits) == 3
    finally:
        event.remove(engine, "commit", listener)


async def test_marks_a_refused_fold_gave_back_are_written_without_more_mail(
    sessions: sessionmaker[Session], blobs: BlobStore, mailboxes: MemoryMailboxes, directory: None
) -> None:
    """An acceptance takes the queued marks and the database refuses them (its savepoint
    is rolled back): they are not lost with the savepoint; the row is marked once the
    database takes marks again, without more mail and without repair."""
    acceptance = Acceptance(
        sessions, blobs, mailboxes, hostname=f"mail.{LOCAL}", mark_fold_wait=0.05, busy=lambda: 10
    )
    _run(sessions, HOLD_MARKS)
    first = make_message(attach=False)
    await acceptance.accept(first, deliver_verdict(first.queue_id))
    await acceptance.drain()  # the marker tried, was refused and stopped
    again = replace(first, queue_id="Q0000002")  # a retry: nothing new is delivered
    outcome = await acceptance.accept(again, deliver_verdict(again.queue_id))
    assert outcome == Accepted("Q0000001", duplicate=True)
    _run(sessions, RELEASE_MARKS)

    def state() -> str:
        with sessions() as session:
            return str(session.scalar(select(MessageRecord.state)))

    await wait_for(lambda: state() == "delivered", timeout=15)
    await acceptance.drain()
    assert len(mailboxes.copies) == 1


async def test_new_recipient_of_the_same_message_links_to_the_first_entry(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    first = make_message()
    await acceptance.accept(first, deliver_verdict(first.queue_id, report(), metadata()))
    wider = replace(first, rcpt_tos=(f"vanthu@{LOCAL}", f"lanhdao@{LOCAL}"), queue_id="Q0000003")
    await acceptance.accept(wider, deliver_verdict(wider.queue_id, report(), metadata()))
    assert [c[0] for c in mailboxes.copies] == [f"vanthu@{LOCAL}", f"lanhdao@{LOCAL}"]
    assert mailboxes.headers()["X-Mailsvc-Register-Number"] == "1/2026"
    [entry] = _entries(sessions)
    assert entry.duplicates == 1
    assert [(d.recipient, d.kind) for d in entry.deliveries] == [
        (f"vanthu@{LOCAL}", "first"),
        (f"lanhdao@{LOCAL}", "duplicate"),
    ]


async def test_two_recipients_in_one_agency_share_one_entry(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    msg = make_message(rcpt=(f"vanthu@{LOCAL}", f"annv.stttt@{LOCAL}"))
    await acceptance.accept(msg, deliver_verdict(msg.queue_id, report(), metadata("")))
    [entry] = _entries(sessions)
    assert [(d.recipient, d.kind) for d in entry.deliveries] == [
        (f"vanthu@{LOCAL}", "first"),
        (f"annv.stttt@{LOCAL}", "copy"),
    ]
    assert all(b"X-Mailsvc-Register-Number: 1/2026" in c[2] for c in mailboxes.copies)
    assert mailboxes.flags == []  # not urgent
    assert mailboxes.headers()["X-Mailsvc-Urgency"] == "normal"


@pytest.mark.parametrize(
    ("field", "urgent"),
    [
        ("X-Priority: 1 (Highest)", True),
        ("Importance: High", True),
        ("Priority:  urgent", True),
        ("X-Priority: 3 (Normal)", False),
    ],
)
async def test_urgency_from_the_priority_fields_without_metadata(
    acceptance: Acceptance, sessions: sessionmaker[Session], field: str, urgent: bool
) -> None:
    """No metadata reading: the mail's priority fields (read raw, never parsed into
    structured headers) decide, with the subject."""
    msg = make_message(subject="Công văn 12/STC-VP V/v báo cáo")
    msg = replace(msg, raw=field.encode() + b"\r\n" + msg.raw)
    await acceptance.accept(msg, deliver_verdict(msg.queue_id, report()))
    [entry] = _entries(sessions)
    assert entry.urgency == ("urgent" if urgent else "normal")


async def test_plain_chatter_is_not_a_document(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    msg = make_message(attach=False, subject="Hẹn họp chiều nay")
    await acceptance.accept(msg, deliver_verdict(msg.queue_id))
    assert _entries(sessions) == []
    assert "X-Mailsvc-Register" not in mailboxes.headers()


async def test_unsigned_document_is_reference_only_without_number(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    msg = make_message(subject="Hỏa tốc: V/v báo cáo số liệu")
    await acceptance.accept(
        msg, deliver_verdict(msg.queue_id, report(DocumentOutcome.REFERENCE_ONLY))
    )
    headers = mailboxes.headers()
    assert headers["X-Mailsvc-Register"] == "000.00.31.H56; status=arrived"
    assert "X-Mailsvc-Register-Number" not in headers
    assert headers["X-Mailsvc-Signature"] == "reference_only"
    assert headers["X-Mailsvc-Urgency"] == "immediate"  # from the subject
    [entry] = _entries(sessions)
    assert entry.incoming_number is None and entry.status == "arrived"
    assert entry.agency_code == "000.00.32.H56"  # from the signature report's sender agency
    assert entry.abstract == "Hỏa tốc: V/v báo cáo số liệu"  # no metadata: the subject


async def test_submission_within_the_agency_is_not_registered(
    acceptance: Acceptance, sessions: sessionmaker[Session]
) -> None:
    internal = make_message(sender=f"annv.stttt@{LOCAL}", direction=Direction.SUBMISSION)
    await acceptance.accept(internal, deliver_verdict(internal.queue_id, report(), metadata()))
    assert _entries(sessions) == []


async def test_quarantined_message_is_never_registered(
    acceptance: Acceptance, mailboxes: MemoryMailboxes, sessions: sessionmaker[Session]
) -> None:
    msg = make_message()
    verdict = Verdict(queue_id=msg.queue_id, findings=(report(),), action=Action.QUARANTINE)
    await acceptance.accept(msg, verdict)
    assert mailboxes.copies[0][1] == "Junk"
    assert _entries(sessions) == []


async def test_refused_document_is_recorded_without_number_or_content(
    acceptance: Acceptance, sessions: sessionmaker[Session], blobs: BlobStore
) -> None:
    msg = make_message(pdf=b"%PDF-1.7 tampered")
    finding = report(DocumentOutcome.INVALID, pdf=b"%PDF-1.7 tampered")
    verdict = Verdict(
        queue_id=msg.queue_id, findings=(finding,), action=Action.REJECT, deciding=finding
    )
    await acceptance.refuse(msg, verdict)
    [entry] = _entries(sessions)
    assert (entry.status, entry.incoming_number, entry.signature_outcome) == (
        "refused",
        None,
        "invalid",
    )
    assert entry.history[-1].reason.startswith("signature-invalid")
    [attachment] = entry.attachments
    assert attachment.attachment.stored is False
    assert not blobs.exists(attachment.attachment.sha256)


async def test_classified_refusal_is_not_entered(
    acceptance: Acceptance, sessions: sessionmaker[Session]
) -> None:
    msg = make_message(subject="MẬT")
    deciding = Finding(stage="classification", status=Status.FAIL, reason="classified-mat")
    verdict = Verdict(
        queue_id=msg.queue_id, findings=(deciding,), action=Action.REJECT, deciding=deciding
    )
    await acceptance.refuse(msg, verdict)
    assert _entries(sessions) == []


def test_attachments_roles() -> None:
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["Message-ID"] = "<a@b>"
    mail.set_content("x")
    mail.add_attachment(b"PK annex", maintype="application", subtype="zip", filename="phu-luc.zip")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="QĐ 35.pdf")
    mail.add_attachment(
        b"sig", maintype="application", subtype="pkcs7-signature", filename="QĐ 35.pdf.p7s"
    )
    msg = InboundMessage("Q1", SENDER, (f"vanthu@{LOCAL}",), mail.as_bytes(), RECEIVED)
    roles = [(a.filename, a.role) for a in attachments_of(msg)]
    assert roles == [
        ("phu-luc.zip", "annex"),
        ("QĐ 35.pdf", "main"),
        ("QĐ 35.pdf.p7s", "signature"),
    ]


async def test_register_code_follows_the_recipients_agency(
    acceptance: Acceptance, sessions: sessionmaker[Session]
) -> None:
    msg = make_message()
    await acceptance.accept(msg, deliver_verdict(msg.queue_id, report(), metadata()))
    with sessions() as session:
        registers = session.scalars(select(Register)).all()
        assert [(r.code, r.agency_id is not None) for r in registers] == [("000.00.31.H56", True)]
        assert "Sở Thông tin và Truyền thông" in registers[0].name
        assert session.scalar(select(func.count()).select_from(RegisterDocument)) == 1


async def test_prepare_stores_attachments_before_the_transaction(
    sessions: sessionmaker[Session], blobs: BlobStore, mailboxes: MemoryMailboxes, directory: None
) -> None:
    recorder = RegisterRecorder(blobs)
    acceptance = Acceptance(sessions, blobs, mailboxes, hostname="mx", recorders=[recorder])
    msg = make_message()
    verdict = deliver_verdict(msg.queue_id, report(), metadata())
    recorder.prepare(msg, verdict)
    assert blobs.exists(hashlib.sha256(PDF).hexdigest())
    await acceptance.accept(msg, verdict)
    assert recorder._prepared == {}  # used up by on_accept
    [entry] = _entries(sessions)
    assert entry.incoming_number == 1 and entry.attachments[0].attachment.stored


async def test_published_document_metadata_reaches_the_register(
    acceptance: Acceptance, sessions: sessionmaker[Session]
) -> None:
    """A document published on one line (issue 18, "glued"): its fields reach the register."""
    case = next(c for c in CASES if c.name == "cv-tong-cuc-one-line-da-ky")
    payload = replace(
        extract_metadata(case.text),
        agency_code="000.00.32.H56",
        sha256=hashlib.sha256(PDF).hexdigest(),
    )
    found = Finding(stage="metadata", status=Status.PASS, reason="found", payload=payload)
    msg = make_message(subject="Gửi văn bản")
    report_finding = report(DocumentOutcome.REFERENCE_ONLY)
    await acceptance.accept(msg, deliver_verdict(msg.queue_id, report_finding, found))
    [entry] = _entries(sessions)
    expected = case.expected
    assert entry.number_notation == expected["number_notation"] == "3012/TCT-KK"
    assert entry.issued_date == date(2022, 8, 4)
    assert entry.doc_type == expected["doc_type"]
    assert entry.abstract == expected["abstract"]
    assert entry.signer == expected["signer"] == "Đặng Ngọc Minh"
