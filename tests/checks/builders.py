"""Rows for compliance tests: mailboxes, checks and delivered messages, in local time."""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.checks.models import MailboxCheck
from mailsvc.db.models import Mailbox, MessageRecord
from mailsvc.signatures.models import MessageSignature
from mailsvc.time import VIETNAM

DOMAIN = "stttt.example.gov.vn"
CLERK = f"vanthu@{DOMAIN}"
CLERK2 = f"vanthu2@{DOMAIN}"
OFFICIAL = f"annv@{DOMAIN}"
LEADER = f"lanhdao@{DOMAIN}"
ADMIN = f"quantri@{DOMAIN}"
CHIEF = "bithu@tinhuy.example.gov.vn"  # a Standing Committee member (priority sender)
FINGERPRINT = "ab" * 32  # a priority signer's certificate (SHA-256)
ROOT = Path(__file__).resolve().parents[2]


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=VIETNAM)


def add_mailbox(
    sessions: sessionmaker[Session],
    address: str,
    role: str,
    created_at: datetime | None = None,
    agency_id: int | None = None,
) -> None:
    with sessions.begin() as session:
        mailbox = Mailbox(address=address, role=role, agency_id=agency_id)
        if created_at is not None:
            mailbox.created_at = created_at
        session.add(mailbox)


def add_checks(sessions: sessionmaker[Session], mailbox: str, *times: datetime) -> None:
    with sessions.begin() as session:
        for at in times:
            session.add(MailboxCheck(mailbox=mailbox, at=at, session=uuid.uuid4().hex))


def add_message(
    sessions: sessionmaker[Session],
    *,
    sender: str,
    recipient: str,
    at: datetime,
    fingerprints: tuple[str, ...] = (),
    action: str = "deliver",
) -> int:
    verdict: dict[str, Any] = {"action": action, "findings": []}
    if fingerprints:
        verdict["findings"].append(
            {
                "stage": "signatures",
                "status": "pass",
                "reason": "signed",
                "evidence": {
                    "document": "35-QD-UBND.pdf",
                    "signatures": [
                        {"signer": "Nguyễn Văn An", "fingerprint": f} for f in fingerprints
                    ],
                },
            }
        )
    key = uuid.uuid4().hex
    with sessions.begin() as session:
        record = MessageRecord(
            queue_id=key[:12].upper(),
            message_key=key,
            message_id=f"<{key}@tinhuy.example.gov.vn>",
            sha256=key,
            size=1000,
            mail_from=sender,
            recipient=recipient,
            direction="inbound",
            received_at=at,
            action=action,
            verdict=verdict,
            state="delivered",
        )
        session.add(record)
        session.flush()
        # What SignatureRecorder writes beside the row at acceptance.
        session.add_all(
            MessageSignature(
                message_record_id=record.id,
                position=n,
                document="35-QD-UBND.pdf",
                format="pdf",
                indication="TOTAL_PASSED",
                signer="Nguyễn Văn An",
                kind="personal",
                fingerprint=f,
            )
            for n, f in enumerate(fingerprints)
        )
        return record.id


def write_policies(home: Path, **checking: Any) -> Path:
    """HOME/policies: the packaged policies, with top-level keys of checking.yaml replaced."""
    shutil.copytree(ROOT / "policies", home / "policies", dirs_exist_ok=True)
    path = home / "policies" / "checking.yaml"
    data = yaml.safe_load((ROOT / "policies" / "checking.yaml").read_text(encoding="utf-8"))
    data.update(checking)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path
