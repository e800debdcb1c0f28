"""OpenPGP detached signatures and PGP/MIME, signed by `gpg`, checked against the admin keyring.

Wrong key usage is not tested here: gpg refuses to make a signature with a key that lacks
the signing capability, so such a sample cannot be produced with the real tool.
"""

from __future__ import annotations

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    Indication,
    SignatureFormat,
)
from mailsvc.signatures.smime import MESSAGE

from .pki import AGENCY_NAME, SamplePki, flip_byte, openpgp_detached, pgp_mime_message


@pytest.mark.parametrize("armor", [False, True])
async def test_detached_signature(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, armor: bool
) -> None:
    assert pki.gpg is not None
    sig = openpgp_detached(pdf, pki.gpg, pki.gpg.personal, armor=armor)
    name = "cv.pdf.asc" if armor else "cv.pdf.sig"
    (report,) = await engine.verify_files([("cv.pdf", pdf), (name, sig)])
    (result,) = report.signatures
    assert result.format is SignatureFormat.OPENPGP
    assert result.passed
    assert (result.signer_name, result.organisation) == ("Nguyen Van An", AGENCY_NAME)
    assert result.kind is CertificateKind.PERSONAL
    assert result.fingerprint == pki.gpg.personal
    assert report.outcome is DocumentOutcome.REFERENCE_ONLY  # no organisation signature


async def test_one_changed_byte_fails(engine: SignatureEngine, pki: SamplePki, pdf: bytes) -> None:
    assert pki.gpg is not None
    sig = openpgp_detached(pdf, pki.gpg, pki.gpg.personal)
    (report,) = await engine.verify_files([("cv.pdf", flip_byte(pdf, b"Quy")), ("cv.pdf.sig", sig)])
    assert (report.signatures[0].indication, report.signatures[0].subindication) == (
        Indication.TOTAL_FAILED,
        "HASH_FAILURE",
    )
    assert report.outcome is DocumentOutcome.INVALID


@pytest.mark.parametrize(
    ("who", "indication", "sub"),
    [
        ("expired", Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE"),
        ("revoked", Indication.TOTAL_FAILED, "REVOKED"),
        ("untrusted", Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"),
    ],
)
async def test_key_problems(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, who: str, indication: Indication, sub: str
) -> None:
    assert pki.gpg is not None
    faked = "20200201T000000" if who == "expired" else None
    sig = openpgp_detached(pdf, pki.gpg, getattr(pki.gpg, who), faked_time=faked)
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.sig", sig)])
    (result,) = report.signatures
    assert (result.indication, result.subindication) == (indication, sub)


async def test_pgp_mime(engine: SignatureEngine, pki: SamplePki, pdf: bytes) -> None:
    assert pki.gpg is not None
    raw = pgp_mime_message(
        pki.gpg, pki.gpg.personal, body="Số lượng: 100 bản.\r\n", attachments=[("cv.pdf", pdf)]
    )
    message, attachment = await engine.verify_message(raw, None)
    assert message.document == MESSAGE and message.signatures[0].passed
    assert attachment.document == "cv.pdf" and attachment.reason == "unsigned"

    # A needle only the body holds (a boundary of random digits may contain "100").
    (message, _) = await engine.verify_message(flip_byte(raw, "Số lượng: 100".encode()), None)
    assert message.signatures[0].subindication == "HASH_FAILURE"


async def test_no_keyring_configured(pki: SamplePki, pdf: bytes) -> None:
    assert pki.gpg is not None
    from mailsvc.signatures.policy import SignaturePolicy

    engine = SignatureEngine(SignaturePolicy(), pki.trust_config(), gnupg_home=None)
    sig = openpgp_detached(pdf, pki.gpg, pki.gpg.personal)
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.sig", sig)])
    assert report.signatures[0].subindication == "NO_CERTIFICATE_CHAIN_FOUND"
