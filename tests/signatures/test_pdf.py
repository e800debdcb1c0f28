"""PDF signatures made by pyHanko's signer: personal + organisation, tampering, bad certs."""

from __future__ import annotations

import dataclasses
import io
import pickle
from datetime import UTC, datetime, timedelta
from enum import Enum

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.report import CertificateKind, DocumentOutcome, Indication

from .conftest import make_engine
from .pki import (
    SamplePki,
    flip_byte,
    make_pdf,
    modify_pdf_after_signing,
    overlay_after_signing,
    signed_pdf,
    timestamper,
)


@pytest.fixture(scope="module")
def two_signatures(pki: SamplePki, pdf: bytes) -> bytes:
    return signed_pdf(pdf, pki.personal, pki.organisation)


async def test_personal_and_organisation_signatures(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    (report,) = await engine.verify_files([("qd.pdf", two_signatures)])
    assert report.outcome is DocumentOutcome.VALID
    assert report.reason == "signed"
    personal, organisation = report.signatures
    assert (personal.field_name, personal.kind) == ("Signature1", CertificateKind.PERSONAL)
    assert (organisation.field_name, organisation.kind) == (
        "Signature2",
        CertificateKind.ORGANISATION,
    )
    assert personal.signer_name == "Nguyễn Văn An"
    assert all(s.indication is Indication.TOTAL_PASSED for s in report.signatures)
    # the organisation signature was added after the personal one: a permitted change
    assert personal.modification == "form_filling"
    assert organisation.modification == "none"


async def test_signature_results_travel_light(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    """A result goes back from the worker process pickled: plain values only (pyHanko's
    text objects hold the parsed PDF; one once made every result half a megabyte)."""
    (report,) = await engine.verify_files([("qd.pdf", two_signatures)])
    for signature in report.signatures:
        for value in dataclasses.asdict(signature).values():
            assert type(value) in (str, type(None), datetime) or isinstance(value, Enum)
        assert len(pickle.dumps(signature)) < 4096


async def test_one_changed_byte_fails(engine: SignatureEngine, two_signatures: bytes) -> None:
    (report,) = await engine.verify_files([("qd.pdf", flip_byte(two_signatures, b"Quy"))])
    assert report.outcome is DocumentOutcome.INVALID
    assert [(s.indication, s.subindication) for s in report.signatures] == [
        (Indication.TOTAL_FAILED, "HASH_FAILURE")
    ] * 2


async def test_page_replaced_after_signing_is_detected(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    forged = modify_pdf_after_signing(two_signatures)
    (report,) = await engine.verify_files([("qd.pdf", forged)])
    assert report.outcome is DocumentOutcome.INVALID
    assert report.reason == "signature-invalid"
    assert {s.modification for s in report.signatures} == {"other"}
    assert all(s.indication is Indication.TOTAL_FAILED for s in report.signatures)


async def test_appearance_painted_over_the_page_after_signing_is_not_valid(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    # pyHanko calls the added field "form filling"; nobody signed what it draws
    (report,) = await engine.verify_files([("qd.pdf", overlay_after_signing(two_signatures))])
    assert report.outcome is DocumentOutcome.REFERENCE_ONLY
    assert report.reason == "signature-indeterminate"
    assert [(s.indication, s.subindication, s.modification) for s in report.signatures] == [
        (Indication.INDETERMINATE, "SIG_CONSTRAINTS_FAILURE", "form_filling")
    ] * 2
    assert "after the last signature" in report.signatures[1].detail


async def test_document_timestamp_after_the_last_signature_is_permitted(
    engine: SignatureEngine, pki: SamplePki, two_signatures: bytes
) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers import PdfTimeStamper

    writer = IncrementalPdfFileWriter(io.BytesIO(two_signatures), strict=False)
    out = io.BytesIO()
    stamper = PdfTimeStamper(timestamper(pki))  # type: ignore[arg-type]
    await stamper.async_timestamp_pdf(writer, "sha256", output=out)
    (report,) = await engine.verify_files([("qd.pdf", out.getvalue())])
    assert report.outcome is DocumentOutcome.VALID
    assert report.signatures[1].modification == "lta_updates"


async def test_certificate_without_revocation_source_under_hard_fail(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes
) -> None:
    """Hard-fail has nothing to check for a certificate naming no CRL or OCSP source: the
    policy requires one for organisation certificates (not, by default, personal ones)."""
    assert pki.seal_without_crl is not None and pki.personal_without_crl is not None
    signed = signed_pdf(pdf, pki.personal_without_crl, pki.seal_without_crl)
    (report,) = await engine.verify_files([("qd.pdf", signed)])
    personal, seal = report.signatures
    assert personal.indication is Indication.TOTAL_PASSED
    assert (seal.kind, seal.indication, seal.subindication) == (
        CertificateKind.ORGANISATION,
        Indication.INDETERMINATE,
        "CHAIN_CONSTRAINTS_FAILURE",
    )
    assert "no revocation source" in seal.detail
    assert report.outcome is DocumentOutcome.REFERENCE_ONLY
    strict = make_engine(pki, require_revocation_source=["organisation", "personal"])
    (report,) = await strict.verify_files([("qd.pdf", signed)])
    assert [s.indication for s in report.signatures] == [Indication.INDETERMINATE] * 2
    lax = make_engine(pki, require_revocation_source=[])
    (report,) = await lax.verify_files([("qd.pdf", signed)])
    assert report.outcome is DocumentOutcome.VALID


async def test_personal_signature_only_is_reference(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes
) -> None:
    (report,) = await engine.verify_files([("qd.pdf", signed_pdf(pdf, pki.personal))])
    assert report.outcome is DocumentOutcome.REFERENCE_ONLY
    assert report.reason == "organisation-signature-missing"


async def test_unsigned_pdf(engine: SignatureEngine, pdf: bytes) -> None:
    (report,) = await engine.verify_files([("qd.pdf", pdf)])
    assert (report.outcome, report.reason, report.signatures) == (
        DocumentOutcome.REFERENCE_ONLY,
        "unsigned",
        (),
    )


@pytest.mark.parametrize(
    ("who", "indication", "sub"),
    [
        ("digsig_only", Indication.TOTAL_PASSED, None),
        ("expired", Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE"),
        ("revoked", Indication.TOTAL_FAILED, "REVOKED"),
        ("untrusted", Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"),
        ("wrong_usage", Indication.INDETERMINATE, "CHAIN_CONSTRAINTS_FAILURE"),
    ],
)
async def test_certificate_problems(
    engine: SignatureEngine,
    pki: SamplePki,
    pdf: bytes,
    who: str,
    indication: Indication,
    sub: str | None,
) -> None:
    (report,) = await engine.verify_files([("qd.pdf", signed_pdf(pdf, getattr(pki, who)))])
    (sig,) = report.signatures
    assert (sig.indication, sig.subindication) == (indication, sub)


async def test_broken_pdf_is_format_failure(engine: SignatureEngine) -> None:
    (report,) = await engine.verify_files([("qd.pdf", b"%PDF-1.7\nnot really a pdf")])
    assert report.signatures[0].subindication == "FORMAT_FAILURE"


async def test_signature_timestamp_is_reported(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes
) -> None:
    signed = signed_pdf(pdf, pki.organisation, timestamper=timestamper(pki))
    (report,) = await engine.verify_files([("qd.pdf", signed)])
    (sig,) = report.signatures
    assert sig.passed
    assert sig.timestamp_time is not None
    assert abs((sig.timestamp_time - datetime.now(UTC)).total_seconds()) < 300


async def test_expired_certificate_valid_at_trusted_timestamp(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes
) -> None:
    # a PAdES-T signature whose timestamp proves it was made while the certificate was valid
    at = datetime.now(UTC) - timedelta(days=500)
    signed = signed_pdf(pdf, pki.expired, timestamper=timestamper(pki, at))
    (report,) = await engine.verify_files([("qd.pdf", signed)])
    (sig,) = report.signatures
    assert (sig.indication, sig.subindication) == (Indication.TOTAL_PASSED, None)
    assert sig.timestamp_time is not None and abs((sig.timestamp_time - at).total_seconds()) < 5
    assert "timestamp" in sig.detail


def _shadowed(signed: bytes, ending: bytes) -> bytes:
    """``signed`` with another PDF's objects appended under the same object numbers, then
    ``ending``. A reader that rebuilds its cross-reference table by scanning the file
    (PDFium does when the last ``startxref`` is unusable) takes the last definition of
    each object: the appended page."""
    import re

    forged = make_pdf("So 99/STTTT-KHTC: chuyen 9.000.000.000 dong vao tai khoan 0123456789")
    objects = re.findall(rb"(?s)(?<![0-9])\d+ 0 obj\b.*?endobj\s", forged)
    signed_xref = int(re.findall(rb"startxref\s+(\d+)\s+%%EOF", signed)[-1])
    return signed + b"".join(objects) + ending.replace(b"{xref}", b"%d" % signed_xref)


@pytest.mark.parametrize(
    "ending",
    [
        # the signed revision's startxref repeated (what pyHanko reads), then one PDFium
        # cannot use, so it rebuilds and shows the appended page
        b"startxref\n{xref}\n%%EOF\nstartxref\n999999999\n",
        # ... or ending on the signed startxref: bytes no revision accounts for
        b"startxref\n{xref}\n%%EOF\n",
    ],
)
async def test_objects_appended_after_the_signed_end_are_not_valid(
    engine: SignatureEngine, two_signatures: bytes, ending: bytes
) -> None:
    import pypdfium2

    shadowed = _shadowed(two_signatures, ending)
    if b"999999999" in ending:  # the attack is real: PDFium shows the appended page
        text = pypdfium2.PdfDocument(shadowed)[0].get_textpage().get_text_range()
        assert "9.000.000.000" in text
    (report,) = await engine.verify_files([("qd.pdf", shadowed)])
    assert report.outcome is not DocumentOutcome.VALID
    assert all(s.indication is not Indication.TOTAL_PASSED for s in report.signatures)
    assert "no revision accounts for" in report.signatures[-1].detail


async def test_end_of_line_after_the_signed_end_is_harmless(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    (report,) = await engine.verify_files([("qd.pdf", two_signatures + b"\r\n\x00")])
    assert report.outcome is DocumentOutcome.VALID


def _validation_data_revision(base: bytes) -> bytes:
    """``base`` with a revision that adds an (empty) document security store: validation
    data, which may follow the last signature."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(base), strict=False)
    store = generic.DictionaryObject({generic.NameObject("/Certs"): generic.ArrayObject()})
    writer.root["/DSS"] = writer.add_object(store)
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _last_startxref_moved(data: bytes, by: int) -> bytes:
    import re

    last = list(re.finditer(rb"startxref\s+(\d+)\s+%%EOF", data))[-1]
    return data[: last.start(1)] + b"%d" % (int(last.group(1)) + by) + data[last.end(1) :]


@pytest.fixture(scope="module")
def signed_with_xref_streams(pki: SamplePki, pdf: bytes) -> bytes:
    """Two signatures on a PDF whose cross-reference sections are streams (PDF 1.5+):
    pyHanko's incremental updates keep the kind."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(
        PdfFileReader(io.BytesIO(pdf)), writer_kwargs={"stream_xrefs": True}
    )
    out = io.BytesIO()
    writer.write(out)
    return signed_pdf(out.getvalue(), pki.personal, pki.organisation)


@pytest.fixture(params=["xref-table", "xref-stream"])
def signed_twice(
    request: pytest.FixtureRequest, two_signatures: bytes, signed_with_xref_streams: bytes
) -> bytes:
    if request.param == "xref-table":
        assert b"/XRef" not in two_signatures
        return two_signatures
    assert b"/Type /XRef" in signed_with_xref_streams[-2000:]
    return signed_with_xref_streams


async def test_validation_data_after_the_last_signature_is_permitted(
    engine: SignatureEngine, signed_twice: bytes
) -> None:
    (report,) = await engine.verify_files([("qd.pdf", _validation_data_revision(signed_twice))])
    assert report.outcome is DocumentOutcome.VALID
    assert report.signatures[1].modification == "lta_updates"


@pytest.mark.parametrize("moved", [0, -3], ids=["startxref-exact", "startxref-3-bytes-off"])
async def test_objects_hidden_before_a_validation_data_revision_are_not_valid(
    engine: SignatureEngine, signed_twice: bytes, moved: int
) -> None:
    """A forged page's objects after the signed end, then a revision adding validation
    data (which pyHanko permits after the last signature and judges by the objects its
    cross-reference section lists). With that revision's ``startxref`` three bytes off,
    which pyHanko corrects, PDFium rebuilds the cross-reference table by scanning the file
    and shows the forged page; both signatures read TOTAL_PASSED before the check."""
    import pypdfium2

    signed_xref = signed_twice.rsplit(b"startxref", 1)[1].split()[0]
    hidden = _shadowed(signed_twice, b"startxref\n" + signed_xref + b"\n%%EOF\n")
    forged = _last_startxref_moved(_validation_data_revision(hidden), moved)
    text = pypdfium2.PdfDocument(forged)[0].get_textpage().get_text_range()
    assert ("9.000.000.000" in text) is (moved != 0)  # the attack is real
    (report,) = await engine.verify_files([("qd.pdf", forged)])
    assert report.outcome is DocumentOutcome.REFERENCE_ONLY
    assert [s.indication for s in report.signatures] == [Indication.INDETERMINATE] * 2
    expected = "not where the file says" if moved else "that no revision lists"
    assert expected in report.signatures[-1].detail


async def test_a_validation_data_revision_must_list_its_objects_where_they_are(
    engine: SignatureEngine, two_signatures: bytes
) -> None:
    """Its cross-reference section lists the new catalog at the offset of the signed one."""
    import re

    added = _validation_data_revision(two_signatures)
    tail = added[len(two_signatures) :]
    entries = re.findall(rb"(\d{10}) 00000 n", tail)
    wrong = tail.replace(entries[-1], b"%010d" % 9, 1)  # object 1 of the first revision
    (report,) = await engine.verify_files([("qd.pdf", two_signatures + wrong)])
    assert report.outcome is not DocumentOutcome.VALID
    assert all(s.indication is not Indication.TOTAL_PASSED for s in report.signatures)
