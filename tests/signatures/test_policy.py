"""policies/signature.yaml and the per-document decision (assess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.errors import ConfigError
from mailsvc.interfaces import AgencyInfo
from mailsvc.signatures.engine import Sender, assess, organisation_matches
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
OTHER = AgencyInfo(code="000.00.02.H99", name=OTHER_AGENCY_NAME, domains=("stc.example.vn",))
FROM_AGENCY = Sender(f"vanthu@{AGENCY_DOMAIN}", AGENCY, agencies=(AGENCY, OTHER))
FROM_NOWHERE = Sender("cv@unknown.example", None, agencies=(AGENCY, OTHER))
BETWEEN_OUR_MAILBOXES = Sender(f"vanthu@{AGENCY_DOMAIN}", AGENCY, internal=True)


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
    ("policy", "signatures", "sender", "outcome", "reason"),
    [
        ({}, [], None, DocumentOutcome.REFERENCE_ONLY, "unsigned"),
        ({"unsigned": "refuse"}, [], None, DocumentOutcome.INVALID, "unsigned"),
        ({}, [PERSONAL, ORG], FROM_AGENCY, DocumentOutcome.VALID, "signed"),
        (
            {},
            [PERSONAL],
            FROM_AGENCY,
            DocumentOutcome.REFERENCE_ONLY,
            "organisation-signature-missing",
        ),
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
        (
            {},  # forwarded by another agency: kept, reference only, the clerk sees why
            [sig(org=OTHER_AGENCY_NAME)],
            FROM_AGENCY,
            DocumentOutcome.REFERENCE_ONLY,
            "signer-mismatch",
        ),
        (
            {"signer_mismatch": "refuse"},
            [sig(org=OTHER_AGENCY_NAME)],
            FROM_AGENCY,
            DocumentOutcome.INVALID,
            "signer-mismatch",
        ),
        # an organisation seal from a sender in no agency is a mismatch (was: skipped)
        ({}, [PERSONAL, ORG], FROM_NOWHERE, DocumentOutcome.REFERENCE_ONLY, "signer-mismatch"),
        (
            {"signer_mismatch": "refuse"},
            [ORG],
            FROM_NOWHERE,
            DocumentOutcome.INVALID,
            "signer-mismatch",
        ),
        (
            {},
            [PERSONAL],
            FROM_NOWHERE,
            DocumentOutcome.REFERENCE_ONLY,
            "organisation-signature-missing",
        ),
        # between our own mailboxes: no mismatch judgement at all
        (
            {"signer_mismatch": "refuse"},
            [sig(org=OTHER_AGENCY_NAME)],
            BETWEEN_OUR_MAILBOXES,
            DocumentOutcome.VALID,
            "signed",
        ),
        ({"signer_mismatch": "refuse"}, [ORG], None, DocumentOutcome.VALID, "signed"),
        (
            {"signer_mismatch": "ignore"},
            [sig(org=OTHER_AGENCY_NAME)],
            FROM_AGENCY,
            DocumentOutcome.VALID,
            "signed",
        ),
    ],
)
def test_assess(
    policy: dict[str, object],
    signatures: list[SignatureResult],
    sender: Sender | None,
    outcome: DocumentOutcome,
    reason: str,
) -> None:
    report = assess("qd.pdf", "00", signatures, SignaturePolicy.model_validate(policy), sender)
    assert (report.outcome, report.reason) == (outcome, reason)


def test_signer_match_is_recorded() -> None:
    report = assess("qd.pdf", "00", [PERSONAL, ORG], SignaturePolicy(), FROM_AGENCY)
    assert report.signer_matches_sender is True
    assert report.sender_agency == AGENCY_CODE
    report = assess("qd.pdf", "00", [ORG], SignaturePolicy(), None)
    assert report.signer_matches_sender is None
    report = assess("qd.pdf", "00", [ORG], SignaturePolicy(), BETWEEN_OUR_MAILBOXES)
    assert report.signer_matches_sender is None


def test_mismatch_detail_names_the_signing_agency_or_says_it_is_unknown() -> None:
    forwarded = assess("qd.pdf", "00", [sig(org=OTHER_AGENCY_NAME)], SignaturePolicy(), FROM_AGENCY)
    assert forwarded.signer_matches_sender is False
    assert f"(agency {OTHER.code})" in forwarded.detail and AGENCY_NAME in forwarded.detail
    forged = assess("qd.pdf", "00", [sig(org="Bộ Không Tồn Tại")], SignaturePolicy(), FROM_AGENCY)
    assert "no agency we know" in forged.detail
    nowhere = assess("qd.pdf", "00", [ORG], SignaturePolicy(), FROM_NOWHERE)
    assert nowhere.signer_matches_sender is False
    assert "cv@unknown.example belongs to no agency" in nowhere.detail


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
