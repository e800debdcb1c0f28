"""Entering documents: numbers only for valid ones, de-duplication, attachments once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.register.models import (
    Attachment,
    DocumentAttachment,
    Register,
    RegisterDocument,
)
from mailsvc.register.registration import DeliveryInput, register_document
from mailsvc.register.statuses import DocumentStatus
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.store.blobs import BlobStore
from tests.register.builders import document, pdf_attachment


def _history(session: Session, document_id: int) -> list[tuple[str | None, str]]:
    row = session.get(RegisterDocument, document_id)
    assert row is not None
    return [(h.from_status, h.to_status) for h in row.history]


def test_valid_document_is_numbered_and_registered(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    doc = document()
    with sessions.begin() as session:
        result = register_document(session, register, doc, blobs=blobs)
    assert result.fresh and result.numbered_now
    assert (result.incoming_number, result.year, result.status) == (
        1,
        2026,
        DocumentStatus.REGISTERED,
    )
    assert result.number_text == "1/2026"
    with sessions() as session:
        assert _history(session, result.document_id) == [
            (None, "arrived"),
            ("arrived", "registered"),
        ]
        row = session.get(RegisterDocument, result.document_id)
        assert row is not None and row.registered_at == doc.received_at
        assert row.attachments[0].role == "main"
        assert row.attachments[0].attachment.stored
    assert blobs.get(doc.attachments[0].sha256) == doc.attachments[0].data


def test_reference_only_and_refused_documents_take_no_number(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    with sessions.begin() as session:
        reference = register_document(
            session,
            register,
            document(signature_outcome=DocumentOutcome.REFERENCE_ONLY, signature_reason="unsigned"),
            blobs=blobs,
        )
        refused = register_document(
            session,
            register,
            document(
                signature_outcome=DocumentOutcome.INVALID,
                signature_reason="signature-invalid",
                refused=True,
                refusal_reason="signature-invalid: HASH_FAILURE",
            ),
        )
        numbered = register_document(session, register, document(), blobs=blobs)
    assert reference.incoming_number is None and reference.status is DocumentStatus.ARRIVED
    assert refused.incoming_number is None and refused.status is DocumentStatus.REFUSED
    assert numbered.incoming_number == 1  # the unnumbered ones used no number
    with sessions() as session:
        assert _history(session, refused.document_id) == [(None, "arrived"), ("arrived", "refused")]
        row = session.get(RegisterDocument, refused.document_id)
        assert row is not None and row.history[-1].reason == "signature-invalid: HASH_FAILURE"
        assert row.attachments[0].attachment.stored is False  # hash only
        ref_row = session.get(RegisterDocument, reference.document_id)
        assert ref_row is not None and "reference only (unsigned)" in ref_row.history[0].reason


def test_same_message_twice_links_to_the_first_entry(
    sessions: sessionmaker[Session], register: Register
) -> None:
    first = document()
    again = document(
        message_key=first.message_key,
        attachments=first.attachments,
        deliveries=(DeliveryInput(recipient="lanhdao@stttt.daknong.gov.vn"),),
    )
    with sessions.begin() as session:
        a = register_document(session, register, first)
        b = register_document(session, register, again)
    assert a.fresh and not b.fresh
    assert b.document_id == a.document_id and b.incoming_number == 1 and not b.numbered_now
    with sessions() as session:
        row = session.get(RegisterDocument, a.document_id)
        assert row is not None and row.duplicates == 1
        assert [(d.recipient, d.kind) for d in row.deliveries] == [
            ("vanthu@stttt.daknong.gov.vn", "first"),
            ("lanhdao@stttt.daknong.gov.vn", "duplicate"),
        ]
        assert session.scalar(select(func.count()).select_from(RegisterDocument)) == 1


def test_same_document_from_the_same_sender_links_to_the_first_entry(
    sessions: sessionmaker[Session], register: Register
) -> None:
    original = document(number_notation="35/2018/QĐ-UBND")
    same_file = document(attachments=original.attachments, number_notation="")
    same_number = document(number_notation="35/2018/QĐ-UBND ", agency_name="SỞ TÀI CHÍNH")
    other_sender = document(attachments=original.attachments, sender="vanthu@sxd.daknong.gov.vn")
    with sessions.begin() as session:
        a = register_document(session, register, original)
        b = register_document(session, register, same_file)
        c = register_document(session, register, same_number)
        d = register_document(session, register, other_sender)
    assert b.document_id == a.document_id and not b.fresh
    assert c.document_id == a.document_id and not c.fresh  # same agency code and number
    assert d.fresh and d.incoming_number == 2  # another sender: its own entry
    with sessions() as session:
        row = session.get(RegisterDocument, a.document_id)
        assert row is not None and row.duplicates == 2


def test_valid_copy_numbers_the_reference_only_first_entry_of_the_same_file(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    """The same main file, first unsigned (its detached signature missing), then valid."""
    same = (pdf_attachment(b"%PDF-1.7 917-TTr", name="917-TTr.pdf"),)
    unsigned = document(
        signature_outcome=DocumentOutcome.REFERENCE_ONLY,
        signature_reason="unsigned",
        number_notation="917-TTr/VPTU",
        agency_code="000.00.01.H56",
        attachments=same,
    )
    signed = document(
        number_notation="917-TTr/VPTU",
        agency_code="000.00.01.H56",
        signer="Lê Thị Bình",
        attachments=same,
    )
    with sessions.begin() as session:
        a = register_document(session, register, unsigned, blobs=blobs)
        b = register_document(session, register, signed, blobs=blobs)
        c = register_document(session, register, signed, blobs=blobs)
    assert a.incoming_number is None
    assert b.document_id == a.document_id and b.numbered_now and b.incoming_number == 1
    assert c.document_id == a.document_id and not c.numbered_now and c.incoming_number == 1
    with sessions() as session:
        row = session.get(RegisterDocument, a.document_id)
        assert row is not None
        assert row.signature_outcome == "valid" and row.signer == "Lê Thị Bình"
        assert [(h.from_status, h.to_status) for h in row.history] == [
            (None, "arrived"),
            ("arrived", "registered"),
        ]
        assert "legally valid copy" in row.history[-1].reason


def test_a_valid_document_with_other_content_is_not_merged_into_a_reference_only_entry(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    """Numbers and notations are predictable: an unsigned forgery "917-TTr/VPTU" sent first
    must not become the valid entry when the signed document of that number arrives (its
    text, abstract and first file were the forgery's). The valid document gets its own
    numbered entry with its own content; the earlier one stays reference only and says so."""
    forged = document(
        signature_outcome=DocumentOutcome.REFERENCE_ONLY,
        signature_reason="unsigned",
        number_notation="917-TTr/VPTU",
        agency_code="000.00.01.H56",
        abstract="V/v chuyển 9.000.000.000 đồng vào tài khoản 0123456789",
    )
    genuine = document(
        number_notation="917-TTr/VPTU",
        agency_code="000.00.01.H56",
        attachments=(pdf_attachment(b"%PDF-1.7 signed copy", name="917-TTr.pdf"),),
        abstract="V/v kế hoạch năm 2027",
        signer="Lê Thị Bình",
    )
    with sessions.begin() as session:
        a = register_document(session, register, forged, blobs=blobs)
        b = register_document(session, register, genuine, blobs=blobs)
        c = register_document(session, register, genuine, blobs=blobs)
    assert a.incoming_number is None
    assert b.fresh and b.document_id != a.document_id and b.incoming_number == 1
    assert c.document_id == b.document_id and not c.fresh  # later copies: the valid entry
    with sessions() as session:
        first = session.get(RegisterDocument, a.document_id)
        valid = session.get(RegisterDocument, b.document_id)
        assert first is not None and valid is not None
        assert first.status == "arrived" and first.signature_outcome == "reference_only"
        assert "9.000.000.000" in first.abstract
        assert "other content" in first.history[-1].reason
        assert valid.abstract == "V/v kế hoạch năm 2027" and valid.status == "registered"
        assert [x.filename for x in valid.attachments] == ["917-TTr.pdf"]


def test_refused_entry_does_not_swallow_a_valid_resubmission(
    sessions: sessionmaker[Session], register: Register
) -> None:
    refused = document(
        signature_outcome=DocumentOutcome.INVALID, refused=True, number_notation="12/UBND-VX"
    )
    fixed = document(number_notation="12/UBND-VX")
    refused_again = document(
        signature_outcome=DocumentOutcome.INVALID,
        refused=True,
        number_notation="12/UBND-VX",
    )
    with sessions.begin() as session:
        a = register_document(session, register, refused)
        b = register_document(session, register, fixed)
        c = register_document(session, register, refused_again)
    assert b.fresh and b.incoming_number == 1 and b.document_id != a.document_id
    assert c.document_id == a.document_id and not c.fresh


def test_attachments_are_stored_once_by_sha256(
    sessions: sessionmaker[Session], register: Register, blobs: BlobStore
) -> None:
    annex = pdf_attachment(b"%PDF-1.7 shared annex", name="Phu luc.pdf", role="annex")
    with sessions.begin() as session:
        one = register_document(
            session, register, document(attachments=(pdf_attachment(b"A"), annex)), blobs=blobs
        )
        two = register_document(
            session, register, document(attachments=(pdf_attachment(b"B"), annex)), blobs=blobs
        )
    with sessions() as session:
        rows = session.scalars(select(Attachment).where(Attachment.sha256 == annex.sha256)).all()
        assert len(rows) == 1
        links = session.scalars(
            select(DocumentAttachment).where(DocumentAttachment.attachment_id == rows[0].id)
        ).all()
        assert {link.document_id for link in links} == {one.document_id, two.document_id}
    assert blobs.path_for(annex.sha256).read_bytes() == annex.data
