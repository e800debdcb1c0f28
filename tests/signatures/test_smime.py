"""S/MIME messages signed by `openssl cms`: multipart/signed and opaque pkcs7-mime."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.report import DocumentOutcome, Indication, SignatureFormat
from mailsvc.signatures.smime import MESSAGE

from .pki import SamplePki, cms_detached, flip_byte, signed_pdf, smime_message


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
