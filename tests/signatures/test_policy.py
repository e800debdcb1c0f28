"""policies/signature.yaml and the per-document decision (assess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.errors import ConfigError
from mailsvc.interfaces import AgencyInfo
from mailsvc.signatures.engine import assess, organisation_matches
from mailsvc.signatures.policy import SignaturePolicy, load_signature_policy
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    Indication,
    SignatureFormat,
    SignatureResult,
)

from .pki import AGENCY_CODE, AGENCY_DOMAIN, AGENCY_NAME, OTHER_AGENCY_NAME

REPO = Path(__file__).resolve().parents[2]
AGENCY = AgencyInfo(code=AGENCY_CODE, name=AGENCY_NAME, domains=(AGENCY_DOMAIN,))


def sig(
    kind: CertificateKind = CertificateKind.ORGANISATION,
    indication: Indication = Indication.TOTAL_PASSED,
    sub: str | None = None,
    org: str = AGENCY_NAME,
) -> SignatureResult:
    return SignatureResult(
        format=SignatureFormat.PDF,
        indication=indication,
        subindication=sub,
        organisation=org,
        kind=kind,
    )


PERSONAL = sig(CertificateKind.PERSONAL)
ORG = sig()
FAILED = sig(indication=Indication.TOTAL_FAILED, sub="HASH_FAILURE")
UNDECIDED = sig(indication=Indication.INDETERMINATE, sub="OUT_OF_BOUNDS_NO_POE")


@pytest.mark.parametrize(
    ("policy", "signatures", "agency", "outcome", "reason"),
    [
        ({}, [], None, DocumentOutcome.REFERENCE_ONLY, "unsigned"),
        ({"unsigned": "refuse"}, [], None, DocumentOutcome.INVALID, "unsigned"),
        ({}, [PERSONAL, ORG], AGENCY, DocumentOutcome.VALID, "signed"),
        ({}, [PERSONAL], AGENCY, DocumentOutcome.REFERENCE_ONLY, "organisation-signature-missing"),
        (
            {"require_organisation_signature": False},
            [PERSONAL],
            None,
            DocumentOutcome.VALID,
            "signed",
        ),
        (
            {"require_personal_signature": True},
            [ORG],
            None,
            DocumentOutcome.REFERENCE_ONLY,
            "personal-signature-missing",
        ),
        ({}, [PERSONAL, FAILED], None, DocumentOutcome.INVALID, "signature-invalid"),
        (
            {"invalid_signature": "reference_only"},
            [FAILED],
            None,
            DocumentOutcome.REFERENCE_ONLY,
            "signature-invalid",
        ),
        ({}, [ORG, UNDECIDED], None, DocumentOutcome.REFERENCE_ONLY, "signature-indeterminate"),
        (
            {"indeterminate": "refuse"},
            [UNDECIDED],
            None,
            DocumentOutcome.INVALID,
            "signature-indeterminate",
        ),
        ({}, [sig(org=OTHER_AGENCY_NAME)], AGENCY, DocumentOutcome.INVALID, "signer-mismatch"),
        (
            {"signer_mismatch": "reference_only"},
            [sig(org=OTHER_AGENCY_NAME)],
            AGENCY,
            DocumentOutcome.REFERENCE_ONLY,
            "signer-mismatch",
        ),
        (
            {"signer_mismatch": "ignore"},
            [sig(org=OTHER_AGENCY_NAME)],
            AGENCY,
            DocumentOutcome.VALID,
            "signed",
        ),
    ],
)
def test_assess(
    policy: dict[str, object],
    signatures: list[SignatureResult],
    agency: AgencyInfo | None,
    outcome: DocumentOutcome,
    reason: str,
) -> None:
    report = assess("qd.pdf", "00", signatures, SignaturePolicy.model_validate(policy), agency)
    assert (report.outcome, report.reason) == (outcome, reason)


def test_signer_match_is_recorded() -> None:
    report = assess("qd.pdf", "00", [PERSONAL, ORG], SignaturePolicy(), AGENCY)
    assert report.signer_matches_sender is True
    assert report.sender_agency == AGENCY_CODE
    report = assess("qd.pdf", "00", [ORG], SignaturePolicy(), None)
    assert report.signer_matches_sender is None


def test_organisation_matches_name_or_code_ignoring_case_and_spacing() -> None:
    assert organisation_matches("SỞ THÔNG TIN VÀ  TRUYỀN THÔNG THỬ NGHIỆM", AGENCY)
    assert organisation_matches(AGENCY_CODE, AGENCY)
    assert not organisation_matches(OTHER_AGENCY_NAME, AGENCY)
    assert not organisation_matches("", AGENCY)


def test_message_signature_covers_attachments_when_configured() -> None:
    policy = SignaturePolicy(message_signature_covers_attachments=True)
    report = assess("qd.pdf", "00", [], policy, None, inherited=[ORG])
    assert report.outcome is DocumentOutcome.VALID
    assert report.signatures == ()  # the document's own signatures only


def test_packaged_policy_loads() -> None:
    policy = load_signature_policy(REPO / "policies" / "signature.yaml")
    assert policy.revocation_mode == "hard-fail"
    assert "digital_signature" in policy.key_usage


def test_invalid_policy_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "signature.yaml"
    path.write_text("unsigned: maybe\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"signature.yaml: key 'unsigned'"):
        load_signature_policy(path)
    path.write_text("surprise: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="surprise"):
        load_signature_policy(path)
