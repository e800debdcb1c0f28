"""The running server's outbound queue: a receipt the relay refuses (5xx) is failed at
once and the administrators get an alert mail in their INBOX."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.policy import default as default_policy

from sqlalchemy import select

from mailsvc.outbound.models import OutboundMessage
from mailsvc.outbound.routing import Route, TlsMode
from tests.e2e.conftest import DOMAIN, RunningServer, wait_for
from tests.e2e.test_signed_documents_e2e import (
    CLERK,
    SENDER,
    _document_message,
    trust_sample_agency,
)
from tests.e2e.test_smtp_core import fetch_inbox, send
from tests.outbound.test_queue import Sink, free_port, start_sink
from tests.signatures.pki import make_pdf, session_pki, signed_pdf

ADMIN = f"quantri@{DOMAIN}"


async def test_refused_receipt_is_failed_and_alerted_to_admins(server: RunningServer) -> None:
    server.add_mailbox(CLERK)
    server.add_mailbox(ADMIN, role="admin")
    trust_sample_agency(server)
    port = free_port()
    sink = Sink(answers={SENDER: ["550 5.1.1 Mailbox unavailable"]})
    relay = await start_sink(port, sink)
    # The configured smarthost, as `[outbound] relay = "127.0.0.1:PORT"` with
    # `relay_starttls = false` would build it (the sink offers no STARTTLS).
    assert server.app.mailer.router is not None
    server.app.mailer.router.smarthost = Route("127.0.0.1", port, TlsMode.NONE, "smarthost")
    try:
        pki = session_pki()
        pdf = signed_pdf(make_pdf("Quyết định số 36/2026/QĐ-UBND"), pki.personal, pki.organisation)
        assert await asyncio.to_thread(send, server, _document_message(pdf), SENDER, [CLERK]) == {}
        await wait_for(lambda: ("alert-undelivered", ADMIN) in server.app.mailer.sent)
    finally:
        relay.close()
        await relay.wait_closed()
    with server.sessions() as session:
        rows = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        assert [(r.kind, r.state, r.attempts) for r in rows] == [
            ("notice-03", "failed", 1),
            ("alert-undelivered", "sent", 1),
        ]
        assert "550" in rows[0].last_error
    [alert] = await asyncio.to_thread(fetch_inbox, server, ADMIN)
    mail = message_from_bytes(alert, policy=default_policy)
    assert mail["Subject"] == f"[Cảnh báo] Không gửi được thư tới {SENDER}"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "notice-03" in text and "550 5.1.1 Mailbox unavailable" in text
    assert sink.received == []
