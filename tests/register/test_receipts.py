"""The sender's receipt (notice 03/01) is queued in the acceptance transaction: it commits
with the register entry it reports. A real database, the real register recorder and the
real outbound queue (not started, so the rows stay to be read); the mailbox engine is the
in-memory stand-in of test_recorder, here failing its first delivery as a stopped Dovecot
would."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.db.models import MessageRecord
from mailsvc.delivery import Acceptance, Annotations
from mailsvc.errors import MailsvcError
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.message import InboundMessage
from mailsvc.notify.notices import NoticeFollower
from mailsvc.outbound.mailer import Mailer
from mailsvc.outbound.models import OutboundMessage
from mailsvc.outcome import Accepted, Deferred
from mailsvc.register.models import RegisterDocument
from mailsvc.register.recorder import RegisterRecorder
from mailsvc.store.blobs import BlobStore
from mailsvc.verdict import Finding, Status, Verdict
from tests.register.test_recorder import (
    LOCAL,
    SENDER,
    MemoryMailboxes,
    deliver_verdict,
    directory,  # noqa: F401 (fixture)
    make_message,
    metadata,
    report,
)


class FailingOnce(MemoryMailboxes):
    """Refuses the first delivery (Dovecot stopped), then takes every copy."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def deliver(
        self, recipient: str, data: bytes, folder: str = "INBOX", *, sender: str = ""
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise MailsvcError("LMTP: connection refused")
        await super().deliver(recipient, data, folder, sender=sender)


def receipts(sessions: sessionmaker[Session]) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def dkim_pass() -> Finding:
    return Finding(stage="authentication", status=Status.PASS, reason="dkim-pass")


@pytest.fixture
def notices(sessions: sessionmaker[Session], tmp_path: Path) -> NoticeFollower:
    mailer = Mailer(
        LmtpClient(tmp_path / "no-lmtp.sock"),
        is_local_domain=lambda domain: domain == LOCAL,
        sessions=sessions,
    )
    return NoticeFollower(
        sessions,
        mailer,
        templates_dir(Settings(home=tmp_path)) / "notices",
        hostname=f"mail.{LOCAL}",
        domain=LOCAL,
    )


class FailingRecorder(RegisterRecorder):
    """Makes its register entry, then fails (the disk, the database) before the commit."""

    def on_accept(
        self,
        session: Session,
        msg: InboundMessage,
        verdict: Verdict,
        records: Sequence[MessageRecord],
    ) -> Annotations:
        super().on_accept(session, msg, verdict, records)
        raise RuntimeError("disk I/O error after the register entry")


async def test_a_receipt_commits_with_its_register_entry_and_a_retry_after_4xx_gets_none_more(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    directory: None,  # noqa: F811
    notices: NoticeFollower,
) -> None:
    mailboxes = FailingOnce()
    acceptance = Acceptance(
        sessions,
        blobs,
        mailboxes,
        hostname=f"mail.{LOCAL}",
        recorders=[RegisterRecorder(blobs)],
        followers=[notices],
        receipts=notices,
    )
    msg = make_message()
    verdict = deliver_verdict(msg.queue_id, dkim_pass(), report(), metadata())

    # Dovecot refuses: the sender gets 4xx, but the document is registered (number 1) and
    # its receipt is queued in the same transaction, due now.
    first = await acceptance.accept(msg, verdict)
    assert isinstance(first, Deferred)
    [row] = receipts(sessions)
    assert (row.kind, row.recipient, row.about) == ("notice-03", SENDER, msg.message_id)
    assert row.state == "queued" and row.attempts == 0
    notice = email.message_from_bytes(row.data, policy=email.policy.default)
    [status] = [p for p in notice.iter_attachments() if p.get_filename() == "status.json"]
    assert json.loads(status.get_content())["incoming_number"] == "1"

    # The sender's retry is the same message: delivered now, still one receipt.
    second = await acceptance.accept(msg, verdict)
    assert isinstance(second, Accepted) and second.duplicate
    assert len(mailboxes.copies) == 1
    assert [r.id for r in receipts(sessions)] == [row.id]


async def test_no_receipt_without_an_authenticated_origin_nor_when_the_transaction_fails(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    directory: None,  # noqa: F811
    notices: NoticeFollower,
) -> None:

    unauthenticated = make_message(message_id="<forged@stc.daknong.gov.vn>", queue_id="Q2")
    acceptance = Acceptance(
        sessions, blobs, MemoryMailboxes(), hostname=f"mail.{LOCAL}",
        recorders=[RegisterRecorder(blobs)], receipts=notices,
    )  # fmt: skip
    accepted = await acceptance.accept(
        unauthenticated, deliver_verdict("Q2", report(), metadata())
    )
    assert isinstance(accepted, Accepted) and accepted.entries  # registered, not answered
    assert receipts(sessions) == []

    # The receipt is written after the register entry, in the same transaction: when the
    # transaction fails, neither remains.
    broken = Acceptance(
        sessions, blobs, MemoryMailboxes(), hostname=f"mail.{LOCAL}",
        recorders=[FailingRecorder(blobs)], receipts=notices,
    )  # fmt: skip
    msg = make_message(message_id="<cv13@stc.daknong.gov.vn>", queue_id="Q3")
    with pytest.raises(RuntimeError, match="disk I/O error"):
        await broken.accept(msg, deliver_verdict("Q3", dkim_pass(), report(), metadata()))
    assert receipts(sessions) == []
    with sessions() as session:
        assert session.scalars(select(RegisterDocument.id)).all() == [1]  # Q2's only
