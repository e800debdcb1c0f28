"""SignaturesStage: signed messages in, findings with DocumentSignatureReport payloads out.

Runs the stage as app.py does: a real ProcessPoolExecutor (so everything sent to the
workers must pickle) and the real DbDirectory over a migrated database.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailsvc import directory
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.directory import DbDirectory
from mailsvc.documents.extract import TextExtractor
from mailsvc.message import Direction, InboundMessage, parse_tree
from mailsvc.pipeline.signatures import SignaturesStage
from mailsvc.register.attachments import attachments_in
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import CertificateKind, DocumentOutcome, DocumentSignatureReport
from mailsvc.signatures.trust import TrustConfig
from mailsvc.verdict import Status
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    SamplePki,
    cms_detached,
    flip_byte,
    make_pdf,
    plain_message,
    session_pki,
    signed_pdf,
    smime_message,
)
from tests.signatures.test_forwarded import as_bytes, forward, original


@pytest.fixture(scope="module")
def pki() -> SamplePki:
    return session_pki()


@pytest.fixture(scope="module")
def executor() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def agencies(db_url: str) -> DbDirectory:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        directory.add_agency(
            session, actor="test", code=AGENCY_CODE, name=AGENCY_NAME, domains=[AGENCY_DOMAIN]
        )
        directory.add_agency(
            session,
            actor="test",
            code="000.00.02.H99",
            name="Sở Tài chính Thử nghiệm",
            domains=["stc.thunghiem.gov.vn"],
        )
        session.commit()
    return DbDirectory(sessions)


def stage(
    pki: SamplePki,
    agencies: DbDirectory,
    executor: ProcessPoolExecutor,
    trust: TrustConfig | None = None,
    **policy: object,
) -> SignaturesStage:
    assert pki.gpg is not None
    return SignaturesStage(
        SignaturePolicy.model_validate(policy),
        trust or pki.trust_config(),
        agencies,
        executor,
        gnupg_home=pki.gpg.keyring_home,
    )


def inbound(raw: bytes, sender: str = f"vanthu@{AGENCY_DOMAIN}") -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=sender,
        rcpt_tos=("vanthu@example.vn",),
        raw=raw,
        received_at=datetime.now(UTC),
    )


async def test_signed_pdf_in_smime_message(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    doc = signed_pdf(make_pdf(), pki.personal, pki.organisation)
    raw = smime_message(pki.organisation, tmp_path, attachments=[("qd.pdf", doc)])
    findings = await stage(pki, agencies, executor).inspect(inbound(raw))
    assert [(f.status, f.reason) for f in findings] == [(Status.PASS, "signed")] * 2
    reports = [f.payload for f in findings]
    assert all(isinstance(r, DocumentSignatureReport) for r in reports)
    assert reports[1].document == "qd.pdf"
    assert reports[1].sender_agency == AGENCY_CODE
    assert reports[1].signer_matches_sender is True
    assert reports[1].signatures[1].kind is CertificateKind.ORGANISATION
    # The record stored with the message keeps the form it always had.
    assert findings[1].summary()["evidence"]["signatures"][1]["kind"] == "organisation"


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("valid", Status.PASS, "signed"),
        ("changed", Status.FAIL, "signature-invalid"),
        ("unsigned", Status.NONE, "unsigned"),
        ("personal-only", Status.NONE, "organisation-signature-missing"),
        ("expired", Status.NONE, "signature-indeterminate"),
        ("revoked", Status.FAIL, "signature-invalid"),
    ],
)
async def test_detached_pair_table(
    pki: SamplePki,
    agencies: DbDirectory,
    executor: ProcessPoolExecutor,
    tmp_path: Path,
    case: str,
    status: Status,
    reason: str,
) -> None:
    pdf = make_pdf()
    who = {"personal-only": pki.personal, "expired": pki.expired, "revoked": pki.revoked}.get(
        case, pki.organisation
    )
    files = [("cv.pdf", pdf), ("cv.pdf.p7s", cms_detached(pdf, who, tmp_path))]
    if case == "changed":
        files[0] = ("cv.pdf", flip_byte(pdf, b"Quy"))
    if case == "unsigned":
        files = files[:1]
    (finding,) = await stage(pki, agencies, executor).inspect(inbound(plain_message(files)))
    assert (finding.status, finding.reason) == (status, reason)
    assert finding.payload.document == "cv.pdf"


async def test_signer_from_another_agency(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    pdf = make_pdf()
    files = [("cv.pdf", pdf), ("cv.pdf.p7s", cms_detached(pdf, pki.other_agency, tmp_path))]
    raw = plain_message(files)
    # forwarded from another server: kept as reference only, the finding says why
    (finding,) = await stage(pki, agencies, executor).inspect(inbound(raw))
    assert (finding.status, finding.reason) == (Status.NONE, "signer-mismatch")
    assert finding.payload.signer_matches_sender is False
    assert "Sở Tài chính Thử nghiệm" in finding.detail
    (finding,) = await stage(pki, agencies, executor, signer_mismatch="refuse").inspect(
        inbound(raw)
    )
    assert (finding.status, finding.reason) == (Status.FAIL, "signer-mismatch")
    (finding,) = await stage(pki, agencies, executor, signer_mismatch="ignore").inspect(
        inbound(raw)
    )
    assert finding.status is Status.PASS
    # the same document from the other agency's own domain matches
    raw = plain_message(files, sender="vanthu@stc.thunghiem.gov.vn")
    (finding,) = await stage(pki, agencies, executor).inspect(
        inbound(raw, "vanthu@stc.thunghiem.gov.vn")
    )
    assert (finding.status, finding.payload.signer_matches_sender) == (Status.PASS, True)


async def test_unsigned_refused_by_policy(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor
) -> None:
    raw = plain_message([("cv.pdf", make_pdf())])
    (finding,) = await stage(pki, agencies, executor, unsigned="refuse").inspect(inbound(raw))
    assert (finding.status, finding.reason) == (Status.FAIL, "unsigned")
    assert finding.payload.outcome is DocumentOutcome.INVALID


async def test_no_documents(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor
) -> None:
    raw = b"From: a@b.vn\r\nTo: c@d.vn\r\nSubject: hi\r\n\r\nhello\r\n"
    (finding,) = await stage(pki, agencies, executor).inspect(inbound(raw, "a@b.vn"))
    assert (finding.status, finding.reason, finding.payload) == (Status.NONE, "no-documents", None)


async def test_unreadable_trust_material_is_an_error(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    bad = tmp_path / "trust"
    bad.mkdir()
    (bad / "broken.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    )
    raw = plain_message([("cv.pdf", signed_pdf(make_pdf(), pki.organisation))])
    trust = TrustConfig(anchor_dirs=(bad,))
    (finding,) = await stage(pki, agencies, executor, trust=trust).inspect(inbound(raw))
    assert (finding.status, finding.reason) == (Status.ERROR, "signature-check-unavailable"), (
        finding.detail
    )


async def test_organisation_seal_from_a_sender_in_no_agency_is_a_mismatch(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    pdf = make_pdf()
    files = [("cv.pdf", pdf), ("cv.pdf.p7s", cms_detached(pdf, pki.organisation, tmp_path))]
    raw = plain_message(files, sender="cv@unknown.example")
    (finding,) = await stage(pki, agencies, executor).inspect(inbound(raw, "cv@unknown.example"))
    assert (finding.status, finding.reason) == (Status.NONE, "signer-mismatch")
    assert finding.payload.signer_matches_sender is False
    assert finding.payload.sender_agency is None
    assert "belongs to no agency" in finding.detail


async def test_no_mismatch_judgement_between_our_own_mailboxes(
    pki: SamplePki,
    agencies: DbDirectory,
    executor: ProcessPoolExecutor,
    tmp_path: Path,
    db_url: str,
) -> None:
    """Our official forwards a document signed by another agency to a colleague."""
    ours = "chuyenvien@vpub.thunghiem.gov.vn"
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        directory.add_agency(
            session,
            actor="test",
            code="000.00.33.H99",
            name="Văn phòng UBND Thử nghiệm",
            domains=["vpub.thunghiem.gov.vn"],
            local=True,
        )
        session.commit()
    engine.dispose()
    agencies.refresh()
    pdf = make_pdf()
    files = [("cv.pdf", pdf), ("cv.pdf.p7s", cms_detached(pdf, pki.other_agency, tmp_path))]
    raw = plain_message(files, sender=ours)
    colleague = "vanthu@vpub.thunghiem.gov.vn"
    submitted = replace(
        inbound(raw, ours),
        rcpt_tos=(colleague,),
        direction=Direction.SUBMISSION,
        authenticated_as=ours,
    )
    (finding,) = await stage(pki, agencies, executor, signer_mismatch="refuse").inspect(submitted)
    assert (finding.status, finding.reason) == (Status.PASS, "signed")
    assert finding.payload.signer_matches_sender is None
    # ... but not to another agency hosted on the same server: its register takes it, so
    # it is judged as mail from another server would be
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        directory.add_agency(
            session, actor="test", code="000.00.34.H99", name="Sở Nội vụ Thử nghiệm",
            domains=["snv.thunghiem.gov.vn"], local=True,
        )  # fmt: skip
        session.commit()
    engine.dispose()
    agencies.refresh()
    neighbour = replace(submitted, rcpt_tos=(colleague, "vanthu@snv.thunghiem.gov.vn"))
    (finding,) = await stage(pki, agencies, executor, signer_mismatch="refuse").inspect(neighbour)
    assert (finding.status, finding.reason) == (Status.FAIL, "signer-mismatch")
    # the same bytes arriving from another server claiming our domain are judged
    (finding,) = await stage(pki, agencies, executor, signer_mismatch="refuse").inspect(
        inbound(raw, ours)
    )
    assert (finding.status, finding.reason) == (Status.FAIL, "signer-mismatch")


# -- documents inside a forwarded message (tests/signatures/test_forwarded.py) -------------


async def _forwarded_reports(
    raw: bytes, pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor
) -> list[tuple[Status, str, str]]:
    findings = await stage(pki, agencies, executor).inspect(inbound(raw))
    out = []
    for f in findings:
        assert isinstance(f.payload, DocumentSignatureReport)
        out.append((f.status, f.reason, f.payload.document))
    return out


@pytest.mark.parametrize("shape", ["named .eml", "unnamed"])
async def test_a_forwarded_signed_document_is_validated(
    shape: str, pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor
) -> None:
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    headers = {
        "named .eml": (
            'Content-Type: message/rfc822; name="qd.eml"',
            'Content-Disposition: attachment; filename="qd.eml"',
        ),
        "unnamed": ("Content-Type: message/rfc822",),
    }[shape]
    raw = forward(as_bytes(original(pdf)), *headers)
    assert await _forwarded_reports(raw, pki, agencies, executor) == [
        (Status.PASS, "signed", "35-QD-UBND.pdf")
    ]
    # what the register picks as the entry's legal value: the report of its main file
    [main] = [a for a in attachments_in(parse_tree(raw)) if a.role == "main"]
    assert main.sha256 == hashlib.sha256(pdf).hexdigest()

    changed = forward(as_bytes(original(flip_byte(pdf, b"Quy"))), *headers)
    [(status, reason, document)] = await _forwarded_reports(changed, pki, agencies, executor)
    assert (status, reason, document) == (Status.FAIL, "signature-invalid", "35-QD-UBND.pdf")

    # forwarded by an official of another agency: the policy's forwarded rule applies
    other = forward(as_bytes(original(pdf)), *headers, sender="vanthu@stc.thunghiem.gov.vn")
    [(status, reason, document)] = await _forwarded_reports(other, pki, agencies, executor)
    assert (status, reason) == (Status.NONE, "signer-mismatch")


async def test_an_unsigned_forwarded_document_reads_unsigned(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor
) -> None:
    raw = forward(as_bytes(original(make_pdf("Công văn số 12"))), "Content-Type: message/rfc822")
    [(status, reason, document)] = await _forwarded_reports(raw, pki, agencies, executor)
    assert (status, reason, document) == (Status.NONE, "unsigned", "35-QD-UBND.pdf")


async def test_an_anchor_added_while_running_reaches_the_workers(
    pki: SamplePki, agencies: DbDirectory, executor: ProcessPoolExecutor, tmp_path: Path
) -> None:
    """As app.py runs it: validation in the extractor's worker call, whose task list is
    pickled once and again only when the trust material changes. An anchor copied into
    the trust directory is used for the next message."""
    anchors = tmp_path / "trust"
    anchors.mkdir()
    trust = replace(pki.trust_config(), anchor_dirs=(anchors,))
    extractor = TextExtractor(executor)
    assert pki.gpg is not None
    checks = SignaturesStage(
        SignaturePolicy(), trust, agencies, executor, gnupg_home=pki.gpg.keyring_home,
        extractor=extractor,
    )  # fmt: skip

    async def outcome(number: int) -> DocumentOutcome:
        pdf = signed_pdf(make_pdf(f"Quyết định số {number}/QĐ-UBND"), pki.organisation)
        (finding,) = await checks.inspect(inbound(plain_message([("qd.pdf", pdf)])))
        assert isinstance(finding.payload, DocumentSignatureReport)
        return finding.payload.outcome

    assert await outcome(1) is not DocumentOutcome.VALID  # no anchor yet
    assert await outcome(2) is not DocumentOutcome.VALID
    for path in pki.trust_dir.glob("*.pem"):
        shutil.copy(path, anchors / path.name)
    assert await outcome(3) is DocumentOutcome.VALID
    assert await outcome(4) is DocumentOutcome.VALID
