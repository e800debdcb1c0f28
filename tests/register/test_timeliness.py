"""Registration on time: due on the next working day (weekends and Tết skipped), urgent
documents within the hour; the report lists late and overdue-unregistered entries, and
the register keeps page count, attachments, the mail's Date and the language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.policy import load_checking_policy
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.queries import document_view
from mailsvc.register.registration import number_document, register_document
from mailsvc.register.timeliness import late_registrations, registration_due
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM
from tests.register.builders import document, pdf_attachment

POLICY = load_checking_policy(Path(__file__).resolve().parents[2] / "policies" / "checking.yaml")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=VIETNAM)


def test_due_is_the_end_of_the_next_working_day() -> None:
    # Tuesday → end of Wednesday
    assert registration_due(local(2026, 3, 3, 16, 0), Urgency.NORMAL, POLICY) == local(
        2026, 3, 5, 0, 0
    )
    # Friday evening → end of Monday
    assert registration_due(local(2026, 3, 6, 17, 30), Urgency.NORMAL, POLICY) == local(
        2026, 3, 10, 0, 0
    )
    # the last working day before Tết Bính Ngọ (14-22/2/2026) → end of Monday 23/2
    assert registration_due(local(2026, 2, 13, 10, 0), Urgency.NORMAL, POLICY) == local(
        2026, 2, 24, 0, 0
    )
    # urgent: at once (within the hour), whatever the day
    arrived = local(2026, 3, 7, 9, 0)  # a Saturday
    assert registration_due(arrived, Urgency.IMMEDIATE, POLICY) == arrived + timedelta(hours=1)


def test_late_report_and_new_register_fields(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    friday = local(2026, 3, 6, 10, 0).astimezone(UTC)
    sent = local(2026, 3, 6, 9, 58).astimezone(UTC)
    with sessions.begin() as session:
        on_time = register_document(
            session,
            register,
            document(
                received_at=friday,
                page_count=3,
                mail_date=sent,
                language="vi",
                attachments=(
                    pdf_attachment(b"%PDF-1.7 main"),
                    pdf_attachment(b"%PDF-1.7 annex", "phu-luc.pdf", role="annex"),
                    pdf_attachment(b"sig", "QD-35.pdf.p7s", role="signature"),
                ),
            ),
            blobs=blobs,
        )
        # reference-only: waits for the clerk; numbered on Tuesday → late
        late = register_document(
            session,
            register,
            document(received_at=friday, signature_outcome=DocumentOutcome.REFERENCE_ONLY),
        )
        pending = register_document(
            session,
            register,
            document(
                received_at=friday + timedelta(hours=1),
                signature_outcome=DocumentOutcome.REFERENCE_ONLY,
                urgency=Urgency.URGENT,
            ),
        )
        refused = register_document(session, register, document(received_at=friday, refused=True))
        row = session.get(RegisterDocument, late.document_id)
        assert row is not None
        number_document(session, row, VIETNAM, at=local(2026, 3, 10, 8, 30).astimezone(UTC))
    with sessions() as session:
        entry = session.get(RegisterDocument, on_time.document_id)
        assert entry is not None
        assert (entry.page_count, entry.attachment_count, entry.language) == (3, 2, "vi")
        assert entry.mail_date == sent
        view = document_view(entry, VIETNAM)
        assert view["mail_date"] == "2026-03-06T09:58:00+07:00"
        assert view["page_count"] == 3 and view["attachment_count"] == 2
        found = late_registrations(
            session,
            POLICY,
            since=local(2026, 3, 1, 0, 0),
            until=local(2026, 3, 31, 0, 0),
            now=local(2026, 3, 20, 0, 0),
        )
    by_id = {item.document_id: item for item in found}
    assert set(by_id) == {late.document_id, pending.document_id}
    assert refused.document_id not in by_id and on_time.document_id not in by_id
    assert by_id[late.document_id].due == local(2026, 3, 10, 0, 0)
    assert by_id[late.document_id].late_by == timedelta(hours=8, minutes=30)
    assert by_id[pending.document_id].registered_at is None
    assert by_id[pending.document_id].due == friday + timedelta(hours=2)
