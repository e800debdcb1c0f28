"""Status messages that come back as edXML (QCVN 102:2016 status, no status.json) move
the matching delivery line of the outgoing register, found by Message-ID (In-Reply-To)
or by the number they name; malformed or hostile XML moves nothing and raises nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.message import Direction, InboundMessage
from mailsvc.notify.exchange import read_status
from mailsvc.outgoing.models import OutgoingDelivery, OutgoingDocument
from mailsvc.outgoing.register import settle_outbound
from mailsvc.outgoing.tracking import OutgoingStatusRecorder
from mailsvc.verdict import Action, Finding, Status, Verdict

OURS = "<issued-7@mail.stttt.thunghiem.gov.vn>"
B_DOMAIN = "stc.thunghiem.gov.vn"
B_CLERK = f"vanthu@{B_DOMAIN}"
B_CODE = "000.00.02.H99"
C_CLERK = "vanthu@snv.thunghiem.gov.vn"
C_CODE = "000.00.03.H99"
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def edxml_status(
    code: str = "03", number: str = "7/2026", sender: str = B_CODE, date: str = "2026/03/05"
) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML:edXMLEnvelope xmlns:edXML="{NS}">
  <edXML:edXMLHeader>
    <edXML:MessageHeader>
      <edXML:From>
        <edXML:OrganId>{sender}</edXML:OrganId>
        <edXML:OrganName>Sở Tài chính Thử nghiệm</edXML:OrganName>
      </edXML:From>
      <edXML:ResponseFor>
        <edXML:OrganId>000.00.01.H99</edXML:OrganId>
        <edXML:Code>{number}</edXML:Code>
        <edXML:PromulgationDate>{date}</edXML:PromulgationDate>
        <edXML:DocumentId>000.00.01.H99,2026/03/05,7/2026</edXML:DocumentId>
      </edXML:ResponseFor>
      <edXML:StatusCode>{code}</edXML:StatusCode>
      <edXML:Description>Văn thư đã tiếp nhận văn bản, số đến 12.</edXML:Description>
      <edXML:Timestamp>2026/03/05 10:15:00</edXML:Timestamp>
    </edXML:MessageHeader>
  </edXML:edXMLHeader>
  <edXML:edXMLBody/>
</edXML:edXMLEnvelope>
""".encode()


def status_mail(xml: bytes, *, in_reply_to: str = "", sender: str = B_CLERK) -> InboundMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "vanthu@stttt.thunghiem.gov.vn"
    msg["Subject"] = "Thông báo đã tiếp nhận văn bản"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content("Thông báo trạng thái văn bản (edXML).")
    msg.add_attachment(xml, maintype="application", subtype="xml", filename="status.edxml")
    return InboundMessage(
        queue_id="Q9",
        mail_from=sender,
        rcpt_tos=("vanthu@stttt.thunghiem.gov.vn",),
        raw=msg.as_bytes(),
        received_at=datetime(2026, 3, 5, 3, 15, tzinfo=UTC),
        client_ip="192.0.2.20",
        direction=Direction.INBOUND,
    )


# B's system passed SPF and DMARC: the message is proven to come from B's domain.
AUTHENTIC = Verdict(
    "Q9",
    (
        Finding("authentication", Status.PASS, "spf-pass"),
        Finding("authentication", Status.PASS, "dmarc-pass"),
    ),
    Action.DELIVER,
)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    made = make_sessionmaker(engine)
    with made.begin() as session:
        document = OutgoingDocument(
            year=2026,
            outgoing_number=7,
            kind="issued",
            state="sent",
            message_id=OURS,
            subject="Văn bản số 7/2026: Kế hoạch năm 2027",
            number_notation="40/KH-STTTT",
        )
        document.deliveries = [
            OutgoingDelivery(recipient=B_CLERK, agency_code=B_CODE, status="sent"),
            OutgoingDelivery(recipient=C_CLERK, agency_code=C_CODE, status="sent"),
        ]
        session.add(document)
    yield made
    engine.dispose()


def lines(sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions() as session:
        return {d.recipient: d.status for d in session.scalars(select(OutgoingDelivery))}


def receive(sessions: sessionmaker[Session], msg: InboundMessage) -> list[tuple[str, str]]:
    with sessions.begin() as session:
        return OutgoingStatusRecorder().on_accept(session, msg, AUTHENTIC, []).headers


@pytest.mark.parametrize(
    ("xml", "in_reply_to", "expected"),
    [
        (edxml_status("03", "7/2026"), "", "registered"),  # our outgoing number
        (edxml_status("01", "7"), "", "received"),  # number, year from PromulgationDate
        (edxml_status("02", "40/KH-STTTT"), "", "refused"),  # the document's own notation
        (edxml_status("04", "không rõ"), OURS, "assigned"),  # in reply to our mail
    ],
)
def test_an_edxml_status_alone_moves_the_line_of_the_agency_it_comes_from(
    sessions: sessionmaker[Session], xml: bytes, in_reply_to: str, expected: str
) -> None:
    msg = status_mail(xml, in_reply_to=in_reply_to)
    report = read_status(msg.parsed)
    assert report is not None and report.source == "edxml"
    assert report.sender_code == B_CODE
    headers = receive(sessions, msg)
    assert lines(sessions) == {B_CLERK: expected, C_CLERK: "sent"}
    assert headers == [("X-Mailsvc-Outgoing", f"document=1; status={expected}")]
    with sessions() as session:
        [document] = session.scalars(select(OutgoingDocument)).all()
        [history] = document.history
        assert history.note == "Văn thư đã tiếp nhận văn bản, số đến 12."
        assert history.actor == f"mail:{B_CLERK}"


def test_an_edxml_status_naming_another_agency_moves_nothing(
    sessions: sessionmaker[Session],
) -> None:
    # Sent from B's domain, but claims to be agency C's answer: neither line moves.
    assert receive(sessions, status_mail(edxml_status(sender=C_CODE))) == []
    assert lines(sessions) == {B_CLERK: "sent", C_CLERK: "sent"}


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<edXMLEnvelope><edXMLHeader><MessageHeader><StatusCode>03</StatusCode>
<ResponseFor><Code>&lol3;</Code></ResponseFor></MessageHeader></edXMLHeader></edXMLEnvelope>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/hostname">]>
<edXMLEnvelope><edXMLHeader><MessageHeader><StatusCode>03</StatusCode>
<ResponseFor><Code>&x;</Code></ResponseFor></MessageHeader></edXMLHeader></edXMLEnvelope>"""


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(LAUGHS, id="entity-expansion"),
        pytest.param(XXE, id="external-entity"),
        pytest.param(edxml_status()[:-40], id="truncated"),
        pytest.param(b"\xff\xfe<\x00e\x00", id="not-xml"),
        pytest.param(edxml_status(code="99"), id="unknown-code"),
        pytest.param(edxml_status(number=""), id="no-number"),
        pytest.param(edxml_status(sender="B"), id="bad-agency-code"),
        pytest.param(edxml_status(number="7/2026\x07"), id="control-character"),
        pytest.param(
            edxml_status().replace(
                b"<edXML:StatusCode>03",
                b"<edXML:StatusCode>01</edXML:StatusCode><edXML:StatusCode>03",
            ),
            id="two-status-codes",
        ),
        pytest.param(
            edxml_status().replace(
                b"<edXML:edXMLBody/>", b"<edXML:edXMLBody>" + b"x" * 70_000 + b"</edXML:edXMLBody>"
            ),
            id="oversized",
        ),
        pytest.param(edxml_status().replace(b"edXMLEnvelope", b"Envelope"), id="not-an-envelope"),
    ],
)
def test_malformed_or_hostile_edxml_moves_nothing(
    sessions: sessionmaker[Session], xml: bytes
) -> None:
    msg = status_mail(xml)
    assert read_status(msg.parsed) is None
    assert receive(sessions, msg) == []
    assert lines(sessions) == {B_CLERK: "sent", C_CLERK: "sent"}


def test_an_answer_before_our_queue_recorded_the_send_marks_the_line_sent_first(
    sessions: sessionmaker[Session],
) -> None:
    """The other side queues its receipt as it accepts our mail, so the receipt can arrive
    before our queue has recorded that side's 250: the line is still ``queued``. It moves
    through ``sent`` (it has the document) to the answer's status; the late report of the
    send then changes nothing."""
    with sessions.begin() as session:
        line = session.scalars(
            select(OutgoingDelivery).where(OutgoingDelivery.recipient == B_CLERK)
        ).one()
        line.status, line.outbound_id = "queued", 41
    receive(sessions, status_mail(edxml_status("03", "7/2026")))
    with sessions.begin() as session:
        settle_outbound(session, [(41, "sent", "250 2.0.0 OK")])
    assert lines(sessions) == {B_CLERK: "registered", C_CLERK: "sent"}
    with sessions() as session:
        [document] = session.scalars(select(OutgoingDocument)).all()
        history = [(h.from_status, h.to_status, h.actor) for h in document.history]
        [line] = [d for d in document.deliveries if d.recipient == B_CLERK]
        assert line.sent_at is not None and line.answered_at is not None
    assert history == [
        ("queued", "sent", "mailsvc"),
        ("sent", "registered", f"mail:{B_CLERK}"),
    ]
