"""Issuing writes number and date into the document as an incremental update of its own,
placed between the leader's personal signature and the organisation's signature (made in
the softhsm2 token), and both signatures pass the receiving side's validation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime
from io import BytesIO
from pathlib import Path

import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader

from mailsvc.config import Settings
from mailsvc.outgoing.issuing import (
    FIELD_NAME,
    STAMP_FIELD,
    issue_date_text,
    organisation_signer,
    stamp_and_sign,
)
from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import CertificateKind, DocumentOutcome, Indication
from mailsvc.time import VIETNAM
from tests.signatures.pki import SamplePki, make_pdf, pdf_from_objects, session_pki, signed_pdf
from tests.softhsm import Token

AGENCY = "Sở Thông tin và Truyền thông Thử nghiệm"
ISSUED_AT = datetime(2026, 3, 5, 9, 30, tzinfo=VIETNAM)


@pytest.fixture(scope="module")
def pki() -> SamplePki:
    return session_pki()


@pytest.fixture
def settings(tmp_path: Path, softhsm: Token, pki: SamplePki) -> Settings:
    pin = tmp_path / "token.pin"
    pin.write_text(softhsm.pin + "\n", encoding="utf-8")
    pin.chmod(0o600)
    return Settings.model_validate(
        {
            "home": tmp_path,
            "issuing": {
                "pkcs11_module": softhsm.module,
                "token_label": softhsm.label,
                "key_label": softhsm.key_label,
                "cert": str(pki.organisation.cert_path),
                "chain": str(pki.organisation.chain_path),
                "pin_file": str(pin),
                "stamp_box": (330, 700, 570, 790),
            },
        }
    )


@pytest.fixture
def token_signer(settings: Settings) -> Iterator[object]:
    with organisation_signer(settings) as signer:
        yield signer


def form_template(text: str = "Kế hoạch số .../KH-STTTT") -> bytes:
    """A one-page draft made from a template with text fields SoKyHieu and NgayBanHanh
    (field and widget in one dictionary, as office suites export them)."""
    content = f"BT /F1 14 Tf 72 760 Td ({text.encode('ascii', 'replace').decode()}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R 7 0 R] "
        b"/DA (/F1 0 Tf 0 g) /DR << /Font << /F1 5 0 R >> >> >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> /Annots [6 0 R 7 0 R] >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (SoKyHieu) /F 4 /P 3 0 R "
        b"/Rect [72 790 250 810] /DA (/F1 12 Tf 0 g) >>",
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (NgayBanHanh) /F 4 /P 3 0 R "
        b"/Rect [330 790 570 810] /DA (/F1 12 Tf 0 g) >>",
    ]
    return pdf_from_objects(objects)


def receiving_validation(pki: SamplePki, pdf: bytes) -> object:
    """The engine the signatures stage runs (default policy, the test PKI's trust)."""
    engine = SignatureEngine(SignaturePolicy(), pki.trust_config())
    (report,) = asyncio.run(engine.verify_files([("40-KH.pdf", pdf)]))
    return report


def visible_text(pdf: bytes) -> str:
    """What a reader sees on page 1, form fields and annotations included (PDFium
    flattens them into the page, then reads the text)."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        document.init_forms()
        page = document[0]
        page.flatten(pdfium_c.FLAT_PRINT)
        page = document[0]  # the flattened page, reloaded
        return str(page.get_textpage().get_text_range())
    finally:
        document.close()


def revision_fields(pdf: bytes, revision: int) -> dict[str, str]:
    """Form field name -> value (or "signed"/"" for signature fields) as of ``revision``."""
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    historical = reader.get_historical_root(revision)
    found: dict[str, str] = {}
    if "/AcroForm" not in historical:
        return found
    for ref in historical["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        value = field["/V"] if "/V" in field else None
        if str(field.get("/FT")) == "/Sig":
            found[str(field["/T"])] = "signed" if value is not None else ""
        else:
            found[str(field["/T"])] = str(value) if value is not None else ""
    return found


def test_vietnamese_issue_date() -> None:
    assert issue_date_text(date(2026, 3, 5)) == "ngày 05 tháng 3 năm 2026"
    assert issue_date_text(date(2026, 2, 14)) == "ngày 14 tháng 02 năm 2026"
    assert issue_date_text(date(2026, 11, 21)) == "ngày 21 tháng 11 năm 2026"


def test_stamp_is_its_own_revision_between_the_two_signatures(
    pki: SamplePki, settings: Settings, token_signer: object
) -> None:
    draft = signed_pdf(make_pdf("Ke hoach so 40/KH-STTTT"), pki.personal)
    issued = stamp_and_sign(
        draft, token_signer, settings, number="7/2026", moment=ISSUED_AT, signer_name=AGENCY
    )
    reader = PdfFileReader(BytesIO(issued), strict=False)
    # original, personal signature, stamp, organisation signature
    assert reader.xrefs.total_revisions == 4
    personal, organisation = reader.embedded_signatures
    assert (personal.field_name, personal.signed_revision) == ("Signature1", 1)
    assert (organisation.field_name, organisation.signed_revision) == (FIELD_NAME, 3)
    assert organisation.signer_cert.dump() == pki.organisation.cert.public_bytes(Encoding.DER)
    assert revision_fields(issued, 2) == {"Signature1": "signed", STAMP_FIELD: ""}
    assert revision_fields(issued, 3) == {
        "Signature1": "signed",
        STAMP_FIELD: "",
        FIELD_NAME: "signed",
    }
    text = visible_text(issued)
    assert "Số: 7/2026" in text and "Ngày 05 tháng 3 năm 2026" in text
    assert "Ký bởi: " + AGENCY in text

    report = receiving_validation(pki, issued)
    assert report.outcome is DocumentOutcome.VALID, report.detail
    by_field = {s.field_name: s for s in report.signatures}
    assert by_field["Signature1"].kind is CertificateKind.PERSONAL
    assert by_field[FIELD_NAME].kind is CertificateKind.ORGANISATION
    assert all(s.indication is Indication.TOTAL_PASSED for s in report.signatures)
    # the stamp and the organisation signature are form filling for the personal one
    assert by_field["Signature1"].modification == "form_filling"
    assert by_field[FIELD_NAME].modification == "none"


def test_the_templates_form_fields_are_filled_instead_of_a_stamp(
    pki: SamplePki, settings: Settings, token_signer: object
) -> None:
    draft = signed_pdf(form_template(), pki.personal)
    assert revision_fields(draft, 1) == {"SoKyHieu": "", "NgayBanHanh": "", "Signature1": "signed"}
    issued = stamp_and_sign(
        draft, token_signer, settings, number="8/2026", moment=ISSUED_AT, signer_name=AGENCY
    )
    reader = PdfFileReader(BytesIO(issued), strict=False)
    assert reader.xrefs.total_revisions == 4
    # revision 2: both fields filled in one update, no stamp field, not yet signed
    assert revision_fields(issued, 2) == {
        "SoKyHieu": "8/2026",
        "NgayBanHanh": "ngày 05 tháng 3 năm 2026",
        "Signature1": "signed",
    }
    assert [s.signed_revision for s in reader.embedded_signatures] == [1, 3]
    text = visible_text(issued)
    assert "8/2026" in text and "ngày 05 tháng 3 năm 2026" in text
    report = receiving_validation(pki, issued)
    assert report.outcome is DocumentOutcome.VALID, report.detail
    assert [s.indication for s in report.signatures] == [Indication.TOTAL_PASSED] * 2
    assert report.signatures[0].modification == "form_filling"


def test_a_stamp_added_after_the_organisation_signature_would_not_pass(
    pki: SamplePki, settings: Settings, token_signer: object
) -> None:
    """Why the order matters: the same stamp written after the last signature is an
    unsigned change drawn over signed pages, which the receiving side's tail rule
    refuses to call valid."""
    from mailsvc.outgoing.issuing import sign_organisation, write_number_and_date

    draft = signed_pdf(make_pdf("Ke hoach so 41/KH-STTTT"), pki.personal)
    values = {"number": "9/2026", "signer": AGENCY, "time": "09:30 05/03/2026"}
    wrong_order = write_number_and_date(
        sign_organisation(draft, token_signer, settings, values),
        settings,
        "9/2026",
        ISSUED_AT.date(),
    )
    report = receiving_validation(pki, wrong_order)
    assert report.outcome is not DocumentOutcome.VALID
    assert all(s.indication is Indication.INDETERMINATE for s in report.signatures)
