"""What a refusal tells people, read from the deciding stage's typed payload: the SMTP
reply, the quarantine record and the administrators' alert name the virus clamd found;
the audit entry and the alert name the marking that was found. Real stages (clamd, the
marking detector), a real database and the real outbound queue (not started)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import tests.hostile_mail as hm
from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.db.models import Agency, AuditEntry, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.documents.extract import TextExtractor
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.message import InboundMessage
from mailsvc.notify.notices import NoticeFollower, RefusalRecorder
from mailsvc.outbound.mailer import Mailer
from mailsvc.outbound.models import OutboundMessage
from mailsvc.pipeline.antivirus import AntivirusStage, ScanResult
from mailsvc.pipeline.classification import ClassificationResult, ClassificationStage
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.policy.classification import load_classification_policy
from mailsvc.policy.pipeline import load_pipeline_policy
from mailsvc.quarantine.models import VirusDetection
from mailsvc.smtp import replies
from mailsvc.verdict import Action, Verdict
from tests.clamd_fixture import ClamdService, clamd_service  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "stttt.example.vn"
ADMIN = f"quantri@{DOMAIN}"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        session.add(Mailbox(address=ADMIN, role="admin"))
    yield factory
    engine.dispose()


def follower(sessions: sessionmaker[Session], tmp_path: Path) -> NoticeFollower:
    mailer = Mailer(
        LmtpClient(tmp_path / "no-lmtp.sock"),
        is_local_domain=lambda domain: domain == DOMAIN,
        sessions=sessions,
    )
    return NoticeFollower(
        sessions,
        mailer,
        templates_dir(Settings(home=tmp_path)) / "notices",
        hostname=f"mail.{DOMAIN}",
        domain=DOMAIN,
    )


def inbound(raw: bytes) -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=hm.SENDER,
        rcpt_tos=(f"vanthu@{DOMAIN}",),
        raw=raw,
        received_at=datetime.now(UTC),
        client_ip="192.0.2.10",
    )


def queued_alert(sessions: sessionmaker[Session], kind: str) -> EmailMessage:
    with sessions() as session:
        [row] = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == kind))
        assert row.recipient == ADMIN
        parsed = email.message_from_bytes(row.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def refuse(sessions: sessionmaker[Session], msg: InboundMessage, verdict: Verdict) -> None:
    """What Acceptance.refuse records, in its own transaction."""
    with sessions.begin() as session:
        RefusalRecorder().on_refuse(session, msg, verdict)


async def test_a_virus_is_named_from_the_scan_result(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    clamd_service: ClamdService,  # noqa: F811
) -> None:
    policy = load_pipeline_policy(ROOT / "policies" / "pipeline.yaml")
    msg = inbound(hm.eicar_zipped())
    verdict = await PipelineRunner([AntivirusStage(clamd_service.client())], policy).run(msg)
    assert verdict.action is Action.REJECT and verdict.deciding is not None
    scan = verdict.deciding.payload
    assert isinstance(scan, ScanResult) and "Eicar" in scan.signature

    assert replies.for_verdict(verdict) == (
        f"554 5.7.1 Message refused: virus detected ({scan.signature})"
    )
    refuse(sessions, msg, verdict)
    with sessions() as session:
        [detection] = session.scalars(select(VirusDetection)).all()
    assert detection.signature == scan.signature and detection.queue_id == "Q1"

    with sessions.begin() as session:  # another agency's administrator: not told
        theirs = Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.example.vn"])
        session.add(theirs)
        session.flush()
        session.add(Mailbox(address="quantri@stc.example.vn", role="admin", agency_id=theirs.id))
    await follower(sessions, tmp_path).after_refuse(msg, verdict)
    alert = queued_alert(sessions, "alert-virus")  # to ADMIN (of no agency) only
    assert scan.signature in str(alert["Subject"])
    assert f"Mẫu nhận dạng: {scan.signature}" in alert.get_content()


async def test_a_marking_is_named_from_the_classification_result(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = hm.SENDER, f"vanthu@{DOMAIN}", "Báo cáo"
    mail.set_content("Kính gửi Sở.\n\nĐộ mật: Tuyệt mật\n\nNội dung báo cáo.\n")
    msg = inbound(mail.as_bytes())
    stage = ClassificationStage(
        load_classification_policy(ROOT / "policies" / "classification.yaml"),
        TextExtractor(None),
    )
    policy = load_pipeline_policy(ROOT / "policies" / "pipeline.yaml")
    verdict = await PipelineRunner([stage], policy).run(msg)
    assert verdict.action is Action.REJECT and verdict.deciding is not None
    result = verdict.deciding.payload
    assert isinstance(result, ClassificationResult) and result.deciding is not None
    marking = result.deciding
    assert (marking.category, marking.title, marking.rule) == ("tuyet-mat", "Tuyệt mật", "label")

    refuse(sessions, msg, verdict)
    with sessions() as session:
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "classified-refused")
        ).all()
    assert (entry.details["rule"], entry.details["level"], entry.details["where"]) == (
        "label", "tuyet-mat", marking.location,
    )  # fmt: skip

    await follower(sessions, tmp_path).after_refuse(msg, verdict)
    body = queued_alert(sessions, "alert-classified").get_content()
    assert "Mức độ: Tuyệt mật" in body
    assert f"Quy tắc phát hiện: label ({marking.location})" in body


async def test_refusal_alerts_go_to_the_recipients_agency_and_the_servers_operators(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """On a server hosting several agencies, a virus or a marking refused for one agency's
    mailbox is told to that agency's administrators and to the administrators of no agency
    (the server's operators, ADMIN here), never to another agency's."""
    with sessions.begin() as session:
        ours = Agency(code="000.00.31.H56", name="Sở TT&TT", domains=[DOMAIN])
        theirs = Agency(code="000.00.32.H56", name="Sở Tài chính", domains=["stc.example.vn"])
        session.add_all([ours, theirs])
        session.flush()
        session.add_all(
            [
                Mailbox(address=f"vanthu@{DOMAIN}", role="clerk", agency_id=ours.id),
                Mailbox(address=f"kythuat@{DOMAIN}", role="admin", agency_id=ours.id),
                Mailbox(address="quantri@stc.example.vn", role="admin", agency_id=theirs.id),
                Mailbox(address=f"cu@{DOMAIN}", role="admin", agency_id=ours.id, removed=True),
            ]
        )
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = hm.SENDER, f"vanthu@{DOMAIN}", "Báo cáo"
    mail.set_content("Kính gửi Sở.\n\nĐộ mật: Tuyệt mật\n\nNội dung báo cáo.\n")
    msg = inbound(mail.as_bytes())
    stage = ClassificationStage(
        load_classification_policy(ROOT / "policies" / "classification.yaml"),
        TextExtractor(None),
    )
    policy = load_pipeline_policy(ROOT / "policies" / "pipeline.yaml")
    verdict = await PipelineRunner([stage], policy).run(msg)
    assert verdict.action is Action.REJECT
    await follower(sessions, tmp_path).after_refuse(msg, verdict)
    with sessions() as session:
        told = session.scalars(
            select(OutboundMessage.recipient)
            .where(OutboundMessage.kind == "alert-classified")
            .order_by(OutboundMessage.recipient)
        ).all()
    assert told == [f"kythuat@{DOMAIN}", ADMIN]
