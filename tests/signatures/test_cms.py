"""Detached CMS (x.pdf + x.pdf.p7s, CAdES-BES by `openssl cms -cades`) and enveloping .p7m."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import CertificateKind, DocumentOutcome, Indication
from mailsvc.signatures.trust import TrustConfig

from .conftest import make_engine
from .pki import SamplePki, cms_detached, cms_enveloping, flip_byte

CASES = [
    # identity, indication, subindication, outcome
    ("organisation", Indication.TOTAL_PASSED, None, DocumentOutcome.VALID),
    ("personal", Indication.TOTAL_PASSED, None, DocumentOutcome.REFERENCE_ONLY),
    ("digsig_only", Indication.TOTAL_PASSED, None, DocumentOutcome.REFERENCE_ONLY),
    ("expired", Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE", DocumentOutcome.REFERENCE_ONLY),
    ("revoked", Indication.TOTAL_FAILED, "REVOKED", DocumentOutcome.INVALID),
    (
        "untrusted",
        Indication.INDETERMINATE,
        "NO_CERTIFICATE_CHAIN_FOUND",
        DocumentOutcome.REFERENCE_ONLY,
    ),
    (
        "wrong_usage",
        Indication.INDETERMINATE,
        "CHAIN_CONSTRAINTS_FAILURE",
        DocumentOutcome.REFERENCE_ONLY,
    ),
]


@pytest.mark.parametrize(("who", "indication", "sub", "outcome"), CASES)
async def test_detached_cms(
    engine: SignatureEngine,
    pki: SamplePki,
    pdf: bytes,
    work: Path,
    who: str,
    indication: Indication,
    sub: str | None,
    outcome: DocumentOutcome,
) -> None:
    p7s = cms_detached(pdf, getattr(pki, who), work)
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.document == "cv.pdf"
    assert report.outcome is outcome
    (sig,) = report.signatures
    assert (sig.indication, sig.subindication) == (indication, sub)
    assert sig.serial == format(getattr(pki, who).cert.serial_number, "X")


async def test_detached_cms_reports_signer(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, work: Path
) -> None:
    p7s = cms_detached(pdf, pki.personal, work)
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    (sig,) = report.signatures
    assert sig.signer_name == "Nguyễn Văn An"
    assert sig.organisation == "Sở Thông tin và Truyền thông Thử nghiệm"
    assert sig.kind is CertificateKind.PERSONAL
    assert "Test Issuing CA" in sig.issuer
    assert sig.signing_time is not None
    assert sig.trust_anchor.startswith("Common Name: Test Root CA")
    assert report.reason == "organisation-signature-missing"


async def test_one_changed_byte_fails(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, work: Path
) -> None:
    p7s = cms_detached(pdf, pki.organisation, work)
    changed = flip_byte(pdf, b"Quy")
    (report,) = await engine.verify_files([("cv.pdf", changed), ("cv.pdf.p7s", p7s)])
    (sig,) = report.signatures
    assert (sig.indication, sig.subindication) == (Indication.TOTAL_FAILED, "HASH_FAILURE")
    assert report.outcome is DocumentOutcome.INVALID
    assert report.reason == "signature-invalid"


async def test_digital_signature_only_fails_when_policy_wants_non_repudiation(
    pki: SamplePki, pdf: bytes, work: Path
) -> None:
    strict = make_engine(pki, key_usage=["non_repudiation"])
    p7s = cms_detached(pdf, pki.digsig_only, work)
    (report,) = await strict.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.signatures[0].subindication == "CHAIN_CONSTRAINTS_FAILURE"
    p7s = cms_detached(pdf, pki.personal, work)
    (report,) = await strict.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.signatures[0].passed


async def test_missing_crl_is_try_later_under_hard_fail(
    pki: SamplePki, pdf: bytes, work: Path
) -> None:
    trust = pki.trust_config()
    no_crls = SignatureEngine(SignaturePolicy(), TrustConfig(anchor_dirs=trust.anchor_dirs))
    p7s = cms_detached(pdf, pki.organisation, work)
    (report,) = await no_crls.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    sig = report.signatures[0]
    assert sig.indication is Indication.INDETERMINATE
    # pyHanko reports missing revocation information as a general chain failure
    assert sig.subindication == "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    assert "CRL" in sig.detail


async def test_stale_crl_is_try_later(pki: SamplePki, pdf: bytes, work: Path) -> None:
    stale_dir = work / "stale"
    stale_dir.mkdir(parents=True)
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.intermediate.cert.subject)
        .last_update(now - timedelta(days=10))
        .next_update(now - timedelta(days=1))
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    (stale_dir / "intermediate.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    trust = TrustConfig(
        anchor_dirs=(pki.trust_dir,),
        crl_files=(pki.crl_dir / "root.crl", stale_dir / "intermediate.crl"),
    )
    stale = SignatureEngine(SignaturePolicy(), trust)
    p7s = cms_detached(pdf, pki.organisation, work)
    (report,) = await stale.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.signatures[0].subindication == "TRY_LATER"
    assert report.reason == "signature-indeterminate"


async def test_enveloping_p7m(
    engine: SignatureEngine, pki: SamplePki, pdf: bytes, work: Path
) -> None:
    p7m = cms_enveloping(pdf, pki.organisation, work)
    (report,) = await engine.verify_files([("qd.pdf.p7m", p7m)])
    assert report.document == "qd.pdf"
    assert report.outcome is DocumentOutcome.VALID
    assert [s.passed for s in report.signatures] == [True]

    (report,) = await engine.verify_files([("qd.pdf.p7m", flip_byte(p7m, b"Quy"))])
    assert report.signatures[0].subindication == "HASH_FAILURE"
    assert report.outcome is DocumentOutcome.INVALID


async def test_garbage_signature_is_format_failure(engine: SignatureEngine, pdf: bytes) -> None:
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", b"\x30\x03garbage")])
    assert report.signatures[0].subindication == "FORMAT_FAILURE"
    assert report.outcome is DocumentOutcome.INVALID


def test_der_signature_ending_in_a_whitespace_byte_is_read_intact(
    pki: SamplePki, work: Path
) -> None:
    from mailsvc.signatures.validation import parse_signed_data

    # DER may end with 0x20/0x0a/...: it must never be stripped like PEM text
    for n in range(400):
        p7s = cms_detached(b"content %d" % n, pki.organisation, work)
        if p7s[-1:] in b" \t\r\n\x0b\x0c":
            break
    else:
        pytest.fail("no signature ending in a whitespace byte was produced")
    sd = parse_signed_data(p7s)
    assert sd.dump() in p7s
