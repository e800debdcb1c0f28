"""Two real mailsvc instances exchanging documents: A (Sở TT&TT) and B (Sở Tài chính),
each one's outbound relay pointing at the other's SMTP port.

A signed document from A to B → B's receipt (S/MIME-signed with B's organisation
certificate, DKIM-signed) reaches A's sender; A answers nothing. Then A recalls the
document (status 13): B's register marks it, the clerk agrees on the command line, the
copy is moved out of INBOX and A receives status 15. Every queue drains and every
mailbox holds exactly what it should."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailsvc.app import App
from mailsvc.cli import main
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.notify.exchange import read_status
from mailsvc.notify.notices import StatusNotice
from mailsvc.outbound.dkim import generate_private_key, public_key_value
from mailsvc.outbound.mailer import RECALLED_FOLDER
from mailsvc.outbound.models import OutboundMessage
from mailsvc.outbound.queue import count_by_state
from mailsvc.register.models import RegisterDocument
from tests.e2e.conftest import RunningServer, build_app, prepare_home, wait_for
from tests.e2e.test_smtp_core import fetch_inbox, make_message, send
from tests.ports import unused_port
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    OTHER_AGENCY_NAME,
    Identity,
    SamplePki,
    make_pdf,
    session_pki,
    signed_pdf,
)

A_DOMAIN = AGENCY_DOMAIN
B_DOMAIN = "stc.thunghiem.gov.vn"
B_CODE = "000.00.02.H99"
A_SENDER = f"vanthu@{A_DOMAIN}"
B_CLERK = f"vanthu@{B_DOMAIN}"

OUTBOUND = """
[outbound]
relay = "127.0.0.1:{relay_port}"
tls_ca_file = "{ca}"
retry_minutes = [0.005]
poll_seconds = 0.2
smime_cert = "{cert}"
smime_key = "{key}"
smime_chain = "{chain}"

[outgoing]
recall_requests = "clerk"

[issuing]
allow_file_key = true
"""


@dataclass
class Pair:
    a: RunningServer
    b: RunningServer


def _free_port() -> int:
    return unused_port()  # not an ephemeral port: see tests/ports.py


def _seed(db_url: str, own: tuple[str, str, str], other: tuple[str, str, str], pin: str) -> None:
    engine = make_engine(db_url)
    with make_sessionmaker(engine).begin() as session:
        code, name, domain = own
        session.add(Agency(code=code, name=name, domains=[domain], local=True))
        code, name, domain = other
        session.add(
            Agency(
                code=code,
                name=name,
                domains=[domain],
                # Closed network: the other instance's address and DKIM key are pinned.
                allowed_senders=["127.0.0.1"],
                dkim_keys={f"mailsvc._domainkey.{domain}": pin},
            )
        )
    engine.dispose()


def _home(base: Path, name: str, db_url: str, domain: str, relay: int, org: Identity) -> Path:
    home = base / name
    prepare_home(
        home,
        db_url,
        hostname=f"mail.{domain}",
        domain=domain,
        extra=OUTBOUND.format(
            relay_port=relay,
            cert=org.cert_path,
            key=org.key_path,
            chain=org.chain_path,
            ca=base / "peers.pem",
        ),
    )
    pki = session_pki()
    for source, target in ((pki.trust_dir, "trust"), (pki.crl_dir, "crl")):
        (home / target).mkdir(exist_ok=True)
        for item in source.iterdir():
            shutil.copy(item, home / target / item.name)
    generate_private_key(home / "dkim" / "private.pem")
    return home


@pytest.fixture
async def pair(service_home: Path, db_url: str, other_db_url: str) -> AsyncIterator[Pair]:
    pki = session_pki()
    base = service_home.parent
    port_a, port_b = _free_port(), _free_port()
    home_a = _home(base, "a", db_url, A_DOMAIN, port_b, pki.organisation)
    home_b = _home(base, "b", other_db_url, B_DOMAIN, port_a, pki.other_agency)
    # Each verifies the other's (self-signed) certificate on STARTTLS.
    (base / "peers.pem").write_bytes(
        (home_a / "tls/cert.pem").read_bytes() + (home_b / "tls/cert.pem").read_bytes()
    )
    key_a = public_key_value((home_a / "dkim" / "private.pem").read_bytes())
    key_b = public_key_value((home_b / "dkim" / "private.pem").read_bytes())
    agency_a = (AGENCY_CODE, AGENCY_NAME, A_DOMAIN)
    agency_b = (B_CODE, OTHER_AGENCY_NAME, B_DOMAIN)
    _seed(db_url, agency_a, agency_b, key_b)
    _seed(other_db_url, agency_b, agency_a, key_a)
    apps: list[App] = []
    try:
        for home, port in ((home_a, port_a), (home_b, port_b)):
            app = build_app(home, listen={"smtp": f"127.0.0.1:{port}"})
            apps.append(app)
            await app.start()
        pair = Pair(RunningServer(apps[0], home_a), RunningServer(apps[1], home_b))
        pair.a.add_mailbox(A_SENDER)
        pair.b.add_mailbox(B_CLERK)
        yield pair
    finally:
        for app in reversed(apps):
            await app.stop()


def _status_of(raw: bytes) -> dict[str, object]:
    message = message_from_bytes(raw, policy=default_policy)
    [part] = [p for p in message.walk() if p.get_content_type() == "application/json"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    value = json.loads(payload)
    assert isinstance(value, dict)
    return value


def _openssl_verify(raw: bytes, pki: SamplePki, work: Path) -> subprocess.CompletedProcess[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.eml").write_bytes(raw)
    return subprocess.run(
        [
            "openssl", "smime", "-verify", "-in", str(work / "in.eml"),
            "-CAfile", str(pki.root.cert_path), "-out", str(work / "content.eml"),
        ],
        capture_output=True,
        check=False,
    )  # fmt: skip


def _queue(server: RunningServer) -> dict[str, int]:
    with server.sessions() as session:
        return count_by_state(session)


def _kinds(server: RunningServer) -> list[str]:
    with server.sessions() as session:
        return list(session.scalars(select(OutboundMessage.kind).order_by(OutboundMessage.id)))


def _delivered(server: RunningServer, recipient: str) -> int:
    with server.sessions() as session:
        return len(
            session.scalars(
                select(MessageRecord).where(
                    MessageRecord.recipient == recipient, MessageRecord.state == "delivered"
                )
            ).all()
        )


def _send_raw(server: RunningServer, data: bytes, sender: str, rcpt: str) -> None:
    with server.smtp() as client:
        client.ehlo(f"mail.{A_DOMAIN}")
        client.sendmail(sender, [rcpt], data)


async def test_receipt_between_two_instances_is_signed_and_never_answered_then_recall(
    pair: Pair, tmp_path: Path
) -> None:
    a, b = pair.a, pair.b
    pki = session_pki()

    # 1. A's clerk sends a signed document to B (A's document system talks to B's MX).
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    document = make_message(A_SENDER, B_CLERK, subject="V/v triển khai kế hoạch chuyển đổi số")
    document.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QD.pdf")
    original_id = str(document["Message-ID"])
    assert await asyncio.to_thread(send, b, document, A_SENDER, [B_CLERK]) == {}

    # 2. B's receipt travels through B's queue and A's SMTP to A's sender.
    await wait_for(lambda: ("notice-03", A_SENDER) in b.app.mailer.sent)
    await wait_for(lambda: _delivered(a, A_SENDER) == 1)
    await a.app.acceptance.drain()  # A's follow-up work on the receipt is over
    [receipt] = await asyncio.to_thread(fetch_inbox, a, A_SENDER)
    head = receipt.split(b"\r\n\r\n", 1)[0].decode()
    assert "Auto-Submitted: auto-replied" in head
    assert "dkim=pass" in head and "dmarc=pass" in head
    assert "multipart/signed" in head and 'micalg="sha-256"' in head
    status = _status_of(receipt)
    assert status["status_code"] == "03" and status["message_id"] == original_id
    assert status["incoming_number"] == "1"

    # The receipt is evidence: openssl verifies it with the CA, and the JSON part is
    # inside the signed content; one changed byte breaks it.
    verified = await asyncio.to_thread(_openssl_verify, receipt, pki, tmp_path / "ok")
    assert verified.returncode == 0, verified.stderr
    assert b"Verification successful" in verified.stderr
    content = message_from_bytes((tmp_path / "ok" / "content.eml").read_bytes())
    assert _json_code(content) == "03"
    body_at = receipt.index(b"Content-Transfer-Encoding: quoted-printable")
    tampered = receipt[:body_at] + receipt[body_at:].replace(b"Message-ID: <", b"Message-Id: <", 1)
    assert tampered != receipt
    broken = await asyncio.to_thread(_openssl_verify, tampered, pki, tmp_path / "bad")
    assert broken.returncode != 0 and b"Verification successful" not in broken.stderr

    # A registered nothing and answered nothing: no loop.
    assert a.app.mailer.sent == [] and _queue(a) == {}
    with a.sessions() as session:
        assert session.scalars(select(RegisterDocument)).all() == []
    assert _queue(b) == {"sent": 1}
    assert len(await asyncio.to_thread(fetch_inbox, b, B_CLERK)) == 1

    # 3. A recalls the document: a status message 13 from A's clerk to B's clerk.
    recall = a.app.notices.composer.status_message(
        StatusNotice(
            recipient=B_CLERK,
            status_code="13",
            message_id=original_id,
            subject="V/v triển khai kế hoạch chuyển đổi số",
            time=utcnow(),
            reason="Văn bản ban hành chưa đúng thể thức, sẽ gửi lại văn bản thay thế.",
        )
    )
    assert read_status(message_from_bytes(recall)) is not None
    await asyncio.to_thread(_send_raw, b, recall, A_SENDER, B_CLERK)
    with b.sessions() as session:
        [doc] = session.scalars(select(RegisterDocument)).all()
        assert doc.status == "recall_requested"
        assert doc.history[-1].reason.startswith("Văn bản ban hành chưa đúng thể thức")
        doc_id, copy_queue_id = doc.id, doc.deliveries[0].queue_id
    await wait_for(lambda: ("alert-recall-requested", B_CLERK) in b.app.mailer.sent)

    # 4. B's clerk agrees; the confirmation (15) goes back and the copy is voided.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["--home", str(b.home), "register", "set-status", str(doc_id), "recalled",
         "--reason", "Đồng ý thu hồi theo đề nghị của cơ quan gửi"],
        env={"MAILSVC_ACTOR": "cli:vanthu"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"notice-15 to {A_SENDER}" in result.output
    await wait_for(lambda: ("notice-15", A_SENDER) in b.app.mailer.sent)
    await wait_for(lambda: b.app.mailer.voided == [(B_CLERK, copy_queue_id)])
    await wait_for(lambda: _delivered(a, A_SENDER) == 2)
    await a.app.acceptance.drain()
    confirmation = (await asyncio.to_thread(fetch_inbox, a, A_SENDER))[1]
    done = _status_of(confirmation)
    assert done["status_code"] == "15" and done["message_id"] == original_id
    assert done["reason"] == "Đồng ý thu hồi theo đề nghị của cơ quan gửi"

    # 5. Exactly what each mailbox should hold; both queues drained; A still silent.
    inbox_b = await asyncio.to_thread(fetch_inbox, b, B_CLERK)
    recalled_b = await asyncio.to_thread(fetch_inbox, b, B_CLERK, f'"{RECALLED_FOLDER}"')
    assert len(inbox_b) == 2  # the recall request and the notice to the clerk
    assert [read_status(message_from_bytes(m)) is not None for m in inbox_b] == [True, False]
    clerk_notice = message_from_bytes(inbox_b[1], policy=default_policy)
    assert str(clerk_notice["Subject"]).startswith("[Yêu cầu thu hồi] Văn bản số đến 1/")
    assert len(recalled_b) == 1 and b"X-Mailsvc-Register-Number: 1/" in recalled_b[0]
    assert sorted(_kinds(b)) == ["alert-recall-requested", "notice-03", "notice-15", "void-copy"]
    assert _queue(b) == {"sent": 4}
    assert a.app.mailer.sent == [] and _queue(a) == {}
    with b.sessions() as session:
        doc = session.get(RegisterDocument, doc_id)
        assert doc is not None and doc.status == "recalled"


def _json_code(message: Message) -> str:
    report = read_status(message)
    assert report is not None
    return report.status_code
