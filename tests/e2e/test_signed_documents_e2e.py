"""Signed documents through the running server: valid → registered with a number,
changed after signing → refused at DATA. Real PKI, real pyHanko signer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import smtplib
import tempfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from mailsvc.db.models import Agency, MessageRecord
from mailsvc.register.models import RegisterDocument
from mailsvc.signatures.models import MessageSignature
from tests.documents.metadata_samples import LAYOUTS, layout_docx, layout_pdf
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    OTHER_AGENCY_NAME,
    cms_enveloping,
    flip_byte,
    make_pdf,
    overlay_after_signing,
    session_pki,
    signed_pdf,
    smime_message,
)

CLERK = f"vanthu@{DOMAIN}"
SENDER = f"vanthu@{AGENCY_DOMAIN}"
OTHER_DOMAIN = "stc.thunghiem.gov.vn"


def trust_sample_agency(server: RunningServer) -> None:
    pki = session_pki()
    (server.home / "trust").mkdir(exist_ok=True)
    for pem in pki.trust_dir.glob("*.pem"):
        shutil.copy(pem, server.home / "trust" / pem.name)
    (server.home / "crl").mkdir(exist_ok=True)
    for crl in pki.crl_dir.glob("*.crl"):
        shutil.copy(crl, server.home / "crl" / crl.name)
    with server.app.sessions.begin() as session:
        # Closed network: the agency's sending host is pinned in the directory (SPF pass).
        session.add(
            Agency(
                code=AGENCY_CODE,
                name=AGENCY_NAME,
                domains=[AGENCY_DOMAIN],
                allowed_senders=["127.0.0.1"],
            )
        )
    server.app.directory.refresh()


def _document_message(pdf: bytes) -> bytes:
    msg = make_message(SENDER, CLERK, subject="HỎA TỐC - V/v triển khai kế hoạch chuyển đổi số")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD-UBND.pdf")
    return msg  # type: ignore[return-value]


async def test_signed_pdf_is_registered_and_tampered_copy_refused(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)

    good = _document_message(pdf)
    assert await asyncio.to_thread(send, server, good, SENDER, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    head = delivered.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Mailsvc-Signature: valid" in head
    assert "X-Mailsvc-Register-Number: 1/" in head
    assert "signatures=pass" in head
    assert "X-Mailsvc-Urgency: immediate" in head
    # Urgent documents are flagged for the clerk (set through Dovecot's master user).
    client = server.imap(CLERK)
    try:
        client.select("INBOX", readonly=True)
        typ, data = client.fetch("1", "(FLAGS)")
        assert typ == "OK" and b"\\Flagged" in data[0]
    finally:
        client.logout()

    tampered_pdf = bytearray(pdf)
    middle = len(tampered_pdf) // 3
    tampered_pdf[middle] = ord("A") if tampered_pdf[middle] != ord("A") else ord("B")
    bad = _document_message(bytes(tampered_pdf))
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, bad, SENDER, [CLERK])
    assert info.value.smtp_code == 554
    assert b"signature" in info.value.smtp_error
    with server.sessions() as session:
        assert len(session.scalars(select(MessageRecord)).all()) == 1


def _forwarded_as_attachment(pdf: bytes) -> EmailMessage:
    """The sending agency's clerk forwards its own mail "as attachment" (Thunderbird,
    Outlook): the document travels inside a message/rfc822 part named after the subject."""
    inner = _document_message(pdf)
    msg = make_message(SENDER, CLERK, subject="Fwd: V/v triển khai kế hoạch chuyển đổi số")
    msg.add_attachment(inner, filename="V-v trien khai.eml")
    return msg


async def test_a_document_forwarded_as_attachment_is_validated_and_registered(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    good = _forwarded_as_attachment(pdf)
    assert b"Content-Type: message/rfc822" in good.as_bytes()
    assert await asyncio.to_thread(send, server, good, SENDER, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    head = delivered.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Mailsvc-Signature: valid" in head
    assert "X-Mailsvc-Register-Number: 1/" in head
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.incoming_number) == ("valid", 1)
    assert document.main_sha256 == hashlib.sha256(pdf).hexdigest()

    # changed after signing, inside the forwarded message: refused like a direct one
    bad = _forwarded_as_attachment(flip_byte(pdf, b"Quy"))
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, server, bad, SENDER, [CLERK])
    assert info.value.smtp_code == 554
    assert b"signature" in info.value.smtp_error
    refused = [d for d in _register_entries(server) if d.id != document.id]
    assert [(d.status, d.incoming_number, d.signature_outcome) for d in refused] == [
        ("refused", None, "invalid")
    ]


async def test_appearance_painted_over_a_signed_pdf_is_not_registered_valid(
    server: RunningServer,
) -> None:
    """A white box and a new amount drawn by an unsigned field added after signing."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("So tien: 100.000 dong"), pki.personal, pki.organisation)
    forged = _document_message(overlay_after_signing(pdf, "So tien: 900.000.000 dong"))
    assert await asyncio.to_thread(send, server, forged, SENDER, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    head = delivered.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Mailsvc-Signature: reference_only" in head
    with server.sessions() as session:
        [document] = session.scalars(select(RegisterDocument)).all()
        assert document.signature_outcome == "reference_only"
        assert document.signature_reason == "signature-indeterminate"


def _register_entries(server: RunningServer) -> list[RegisterDocument]:
    with server.sessions() as session:
        return list(session.scalars(select(RegisterDocument)).all())


async def test_organisation_seal_from_a_sender_in_no_agency_is_not_valid(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    stranger = "cv@unknown.example"
    msg = make_message(stranger, CLERK, subject="V/v triển khai kế hoạch")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD-UBND.pdf")
    assert await asyncio.to_thread(send, server, msg, stranger, [CLERK]) == {}
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.signature_reason) == (
        "reference_only",
        "signer-mismatch",
    )


async def test_document_forwarded_by_another_agency_is_kept_as_reference(
    server: RunningServer,
) -> None:
    """Sở Tài chính forwards a decision sealed by Sở TT&TT: not a forgery, not valid for it."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    with server.app.sessions.begin() as session:
        session.add(
            Agency(
                code="000.00.02.H99",
                name=OTHER_AGENCY_NAME,
                domains=[OTHER_DOMAIN],
                allowed_senders=["127.0.0.1"],
            )
        )
    server.app.directory.refresh()
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    forwarder = f"vanthu@{OTHER_DOMAIN}"
    msg = make_message(forwarder, CLERK, subject="Chuyển tiếp: Quyết định số 35/2026/QĐ-UBND")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD-UBND.pdf")
    assert await asyncio.to_thread(send, server, msg, forwarder, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"X-Mailsvc-Signature: reference_only" in delivered.split(b"\r\n\r\n", 1)[0]
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.signature_reason) == (
        "reference_only",
        "signer-mismatch",
    )


async def test_forwarding_between_our_own_mailboxes_is_not_judged(
    server: RunningServer,
) -> None:
    """Our official forwards another agency's sealed decision to a colleague."""
    official = f"chuyenvien@{DOMAIN}"
    server.add_mailbox(CLERK)
    server.add_mailbox(official, role="official")
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.other_agency)
    msg = make_message(official, CLERK, subject="Chuyển tiếp: Quyết định số 35/2026/QĐ-UBND")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD-UBND.pdf")
    login = (official, PASSWORD)
    assert await asyncio.to_thread(send, server, msg, official, [CLERK], "submission", login) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"35-QD-UBND.pdf" in delivered


async def test_seal_certificate_without_revocation_source_is_not_registered_valid(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    assert pki.seal_without_crl is not None
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.seal_without_crl)
    assert await asyncio.to_thread(send, server, _document_message(pdf), SENDER, [CLERK]) == {}
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.signature_reason) == (
        "reference_only",
        "signature-indeterminate",
    )


async def test_sealed_p7m_does_not_lend_its_value_to_a_file_of_the_same_name(
    server: RunningServer,
) -> None:
    """qd-44.pdf.p7m (a genuine seal over the real PDF, sent as application/octet-stream)
    beside an unsigned qd-44.pdf with other content: the .p7m's report names the file it
    encloses, qd-44.pdf, yet it was made from other bytes than the register's main file."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    real = make_pdf("So 44/STTTT-KHTC: kinh phi hoi nghi 100.000.000 dong")
    forged = make_pdf("So 45/STTTT-KHTC: chuyen 9.000.000.000 dong vao tai khoan 0123456789")
    with tempfile.TemporaryDirectory() as work:
        p7m = cms_enveloping(real, pki.organisation, Path(work))
    msg = make_message(SENDER, CLERK, subject="V/v phê duyệt kinh phí")
    msg.add_attachment(
        p7m, maintype="application", subtype="octet-stream", filename="qd-44.pdf.p7m"
    )
    msg.add_attachment(forged, maintype="application", subtype="pdf", filename="qd-44.pdf")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"X-Mailsvc-Signature: reference_only" in delivered.split(b"\r\n\r\n", 1)[0]
    with server.sessions() as session:
        [document] = session.scalars(select(RegisterDocument)).all()
        assert document.main_sha256 == hashlib.sha256(forged).hexdigest()
        assert (document.signature_outcome, document.signature_reason) == (
            "reference_only",
            "unsigned",
        )
        assert document.incoming_number is None


def send_raw(server: RunningServer, raw: bytes) -> dict[str, tuple[int, bytes]]:
    """Send bytes as they are (a signed entity must reach the server byte-exact)."""
    with server.smtp() as client:
        client.ehlo("client.example.vn")
        return client.sendmail(SENDER, [CLERK], raw)


def signed_part_beside(document: bytes, work: Path) -> bytes:
    """multipart/mixed of (1) a text part the sample agency sealed with S/MIME (as any of
    its old mails carries one) and (2) ``document``: an inline application/pdf without a
    file name, outside the signed entity."""
    pki = session_pki()
    signed = smime_message(pki.organisation, work, body="Kính gửi: Văn thư. Xem văn bản.\r\n")
    head, entity = signed.split(b"MIME-Version: 1.0\r\n", 1)
    boundary = b"outer-7f3a"
    return (
        head.replace(b"vanthu@example.vn", CLERK.encode())
        + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer-7f3a\"\r\n\r\n"
        + b"--" + boundary + b"\r\n" + entity + b"\r\n--" + boundary + b"\r\n"
        + b"Content-Type: application/pdf\r\nContent-Disposition: inline\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(document).replace(b"\n", b"\r\n")
        + b"--" + boundary + b"--\r\n"
    )  # fmt: skip


async def test_seal_on_the_text_part_does_not_validate_a_nameless_pdf_beside_it(
    server: RunningServer,
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    forged = make_pdf("So 46/STTTT-KHTC: chuyen 9.000.000.000 dong vao tai khoan 0123456789")
    with tempfile.TemporaryDirectory() as work:
        raw = signed_part_beside(forged, Path(work))
    assert await asyncio.to_thread(send_raw, server, raw) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"X-Mailsvc-Signature: reference_only" in delivered.split(b"\r\n\r\n", 1)[0]
    with server.sessions() as session:
        [document] = session.scalars(select(RegisterDocument)).all()
        assert (document.signature_outcome, document.signature_reason) == (
            "reference_only",
            "unsigned",
        )
        assert document.incoming_number is None
        assert document.main_sha256 == hashlib.sha256(forged).hexdigest()
        assert document.attachment_count == 1
        [attachment] = document.attachments
        assert (attachment.filename, attachment.role) == ("attachment.pdf", "main")
        # the seal itself passed: it is its reach that is limited
        [seal] = session.scalars(select(MessageSignature)).all()
        assert (seal.document, seal.indication) == ("(message)", "TOTAL_PASSED")


DOCX_TYPE = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")


def _valid_entry_reads_cv_state(server: RunningServer, main: bytes) -> None:
    """One valid entry, number 1, whose main file is ``main`` and whose number and
    abstract are those of the cv_state layout (1875/SNV-VTLT)."""
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.incoming_number) == ("valid", 1)
    assert document.main_sha256 == hashlib.sha256(main).hexdigest()
    expected = LAYOUTS["cv_state"].expected
    assert document.number_notation == expected["number_notation"] == "1875/SNV-VTLT"
    assert document.abstract == expected["abstract"]


async def test_register_content_comes_from_the_sealed_main_document(
    server: RunningServer,
) -> None:
    """An unsigned DOCX with another number first, the sealed PDF second: the number,
    abstract and text of the valid entry are the sealed PDF's."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    sealed = signed_pdf(layout_pdf(LAYOUTS["cv_state"]), pki.organisation)
    msg = make_message(SENDER, CLERK, subject="V/v kiểm tra hộp thư công vụ")
    msg.add_attachment(layout_docx(LAYOUTS["tb_party"]), *DOCX_TYPE, filename="phu-luc.docx")
    msg.add_attachment(sealed, maintype="application", subtype="pdf", filename="1875-SNV.pdf")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    _valid_entry_reads_cv_state(server, sealed)


async def test_a_sealed_p7m_entry_reads_its_number_from_the_pdf_it_encloses(
    server: RunningServer,
) -> None:
    """x.pdf.p7m: the register keeps the .p7m (its seal gives the entry its value), and
    the number and abstract come from the PDF the seal covers (they were left empty)."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    with tempfile.TemporaryDirectory() as work:
        p7m = cms_enveloping(layout_pdf(LAYOUTS["cv_state"]), pki.organisation, Path(work))
    msg = make_message(SENDER, CLERK, subject="V/v kiểm tra hộp thư công vụ")
    msg.add_attachment(p7m, maintype="application", subtype="octet-stream", filename="1875.pdf.p7m")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    _valid_entry_reads_cv_state(server, p7m)


async def test_sealed_scan_without_text_takes_no_number_from_unsigned_parts(
    server: RunningServer,
) -> None:
    """The sealed main PDF has no text layer: its metadata cannot be read. The entry is
    valid (the clerk opens the sealed file) but neither the unsigned DOCX beside it nor
    the mail's subject lends it a number, a type or an abstract."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    scan = signed_pdf(make_pdf(""), pki.organisation)
    msg = make_message(SENDER, CLERK, subject="Công văn số 77/STTTT-KHTC V/v chuyển kinh phí")
    msg.add_attachment(layout_docx(LAYOUTS["tb_party"]), *DOCX_TYPE, filename="phu-luc.docx")
    msg.add_attachment(scan, maintype="application", subtype="pdf", filename="scan.pdf")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    [document] = _register_entries(server)
    assert (document.signature_outcome, document.incoming_number) == ("valid", 1)
    assert document.main_sha256 == hashlib.sha256(scan).hexdigest()
    assert (document.number_notation, document.doc_type, document.abstract) == ("", "", "")
    assert document.issued_date is None and document.signer == AGENCY_NAME
