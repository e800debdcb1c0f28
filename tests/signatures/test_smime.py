"""S/MIME messages signed by `openssl cms`: multipart/signed and opaque pkcs7-mime."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.report import DocumentOutcome, Indication, SignatureFormat
from mailsvc.signatures.smime import MESSAGE

from .conftest import make_engine
from .pki import SamplePki, cms_detached, flip_byte, make_pdf, signed_pdf, smime_message


@pytest.mark.parametrize("opaque", [False, True])
async def test_signed_message_with_attachments(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, work: Path, opaque: bool
) -> None:
    doc = signed_pdf(pdf, pki.personal, pki.organisation)
    raw = smime_message(pki.organisation, work, attachments=[("qd.pdf", doc)], opaque=opaque)
    message, attachment = await engine.verify_message(raw, None)
    assert message.document == MESSAGE
    assert message.outcome is DocumentOutcome.VALID
    (sig,) = message.signatures
    assert sig.format is SignatureFormat.SMIME and sig.passed
    assert attachment.document == "qd.pdf"
    assert attachment.outcome is DocumentOutcome.VALID
    assert len(attachment.signatures) == 2


async def test_detached_pair_inside_signed_message(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, work: Path
) -> None:
    p7s = cms_detached(pdf, pki.organisation, work)
    raw = smime_message(pki.personal, work, attachments=[("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    reports = await engine.verify_message(raw, None)
    assert [r.document for r in reports] == [MESSAGE, "cv.pdf"]
    assert reports[1].outcome is DocumentOutcome.VALID


@pytest.mark.parametrize("opaque", [False, True])
async def test_one_changed_byte_fails(
    engine: SignatureEngine, pki: SamplePki, work: Path, opaque: bool
) -> None:
    raw = smime_message(pki.organisation, work, body="Số lượng: 100 bản.\r\n", opaque=opaque)
    if opaque:
        # the body is base64 of the CMS: change a byte of the enclosed content instead
        import base64
        import email

        msg = email.message_from_bytes(raw)
        der = base64.b64decode(msg.get_payload())
        tampered = flip_byte(der, "Số lượng: 100".encode())
        head = raw[: raw.index(b"\r\n\r\n") + 4]
        raw = head + base64.encodebytes(tampered).replace(b"\n", b"\r\n")
    else:
        raw = flip_byte(raw, "Số lượng: 100".encode())
    (message,) = await engine.verify_message(raw, None)
    assert (message.signatures[0].indication, message.signatures[0].subindication) == (
        Indication.TOTAL_FAILED,
        "HASH_FAILURE",
    )
    assert message.outcome is DocumentOutcome.INVALID


@pytest.mark.parametrize(
    ("who", "sub"),
    [
        ("expired", "OUT_OF_BOUNDS_NO_POE"),
        ("revoked", "REVOKED"),
        ("untrusted", "NO_CERTIFICATE_CHAIN_FOUND"),
        ("wrong_usage", "CHAIN_CONSTRAINTS_FAILURE"),
        ("digsig_only", None),
    ],
)
async def test_certificate_problems(
    engine: SignatureEngine, pki: SamplePki, work: Path, who: str, sub: str | None
) -> None:
    raw = smime_message(getattr(pki, who), work)
    (message,) = await engine.verify_message(raw, None)
    assert message.signatures[0].subindication == sub


async def test_unsigned_message_without_attachments(engine: SignatureEngine) -> None:
    raw = b"From: a@b.vn\r\nTo: c@d.vn\r\nSubject: hi\r\n\r\nhello\r\n"
    assert await engine.verify_message(raw, None) == []


def _beside(signed: bytes, document: bytes) -> bytes:
    """``signed`` (a multipart/signed message) as the first part of a multipart/mixed whose
    second part is ``document``: an inline application/pdf without a file name."""
    head, entity = signed.split(b"MIME-Version: 1.0\r\n", 1)
    return (
        head + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="o1"\r\n\r\n'
        + b"--o1\r\n" + entity + b"\r\n--o1\r\n"
        + b"Content-Type: application/pdf\r\nContent-Disposition: inline\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(document).replace(b"\n", b"\r\n") + b"--o1--\r\n"
    )  # fmt: skip


async def test_message_signature_covers_only_what_lies_inside_it(
    pki: SamplePki, pdf: bytes, work: Path
) -> None:
    """Even where the policy lets the message's signature sign its attachments, a PDF
    beside the signed entity (here without a file name) is checked on its own: it gets
    its own report and inherits nothing; the one inside the entity does."""
    engine = make_engine(pki, message_signature_covers_attachments=True)
    outside = make_pdf("So 46/STTTT-KHTC")
    signed = smime_message(pki.organisation, work, attachments=[("inside.pdf", pdf)])
    message, inside, beside = await engine.verify_message(_beside(signed, outside), None)
    assert message.document == MESSAGE and message.outcome is DocumentOutcome.VALID
    assert not message.whole_message  # one part of the message, not all of it
    assert inside.document == "inside.pdf" and inside.outcome is DocumentOutcome.VALID
    assert beside.document == "attachment.pdf"
    assert beside.attachment_sha256 == hashlib.sha256(outside).hexdigest()
    assert (beside.outcome, beside.reason) == (DocumentOutcome.REFERENCE_ONLY, "unsigned")


async def test_signature_on_the_whole_message_says_so(
    engine: SignatureEngine, pki: SamplePki, work: Path
) -> None:
    (message,) = await engine.verify_message(smime_message(pki.organisation, work), None)
    assert message.whole_message and message.outcome is DocumentOutcome.VALID
