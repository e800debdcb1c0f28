"""``parse_head`` keeps each parsed header field (one parse per name and value) and must
answer exactly as the standard modern policy does, hostile fields included."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import pytest

from mailsvc.config import PACKAGED_TEMPLATES
from mailsvc.message import (
    _MEMO_FIELDS,
    _MEMO_VALUE_MAX,
    InboundMessage,
    _field,
    field_text,
    parse_head,
    split_head,
)
from mailsvc.originator import read_originator
from mailsvc.outbound.dsn import DsnComposer, FailedRecipient
from mailsvc.pipeline.limits import check_limits
from mailsvc.policy.limits import LimitsPolicy
from tests.hostile import corpus
from tests.signatures.test_split_multipart import HEADS

RECEIVED = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)

FIELDS = [
    b"From: =?utf-8?b?VsSDbiB0aMawIFVCTkQ=?= <vanthu@ubnd.example.vn>",
    b"From: a@b.example.vn, c@d.example.vn",
    b"From: Team: a@b.example.vn, c@d.example.vn;",
    b'From: "vanthu@ubnd.example.vn" <attacker@evil.example>',
    b"From: <@route:a@b.example.vn>",
    b"From: broken <a@",
    b"From: \xc4\x90o\xc3\xa0n <a@b.example.vn>",
    b"Sender: x@y.example.vn\r\nReply-To: z@y.example.vn",
    b"To: undisclosed-recipients:;",
    b"Date: Sat, 21 Nov 2026 08:00:00 +0700",
    b"Date: 21 Nov 2026 25:61:00 +9900",
    b"Date: not a date",
    b"Subject: =?utf-8?q?V/v_g=E1=BB=ADi_Quy=E1=BA=BFt_=C4=91=E1=BB=8Bnh?=",
    b"Subject: =?utf-8?b?broken",
    b"Subject: folded\r\n  over\r\n\tthree lines",
    b"Message-ID: <abc@def>",
    b"Message-ID: <abc@def> <second@ghi>",
    b"MIME-Version: 1.0 (produced by x)",
    b"Content-Transfer-Encoding: BASE64",
    b"Content-Transfer-Encoding: x-unknown",
    b"Subject: " + b"x" * (_MEMO_VALUE_MAX + 10),
    # long address lists within the originator's cap (longer ones are refused unparsed)
    b"From: " + b",\r\n ".join(b"a%d@b.example.vn" % n for n in range(100)),
    b"To: "
    + b", ".join(b"=?utf-8?q?T=C3=AAn_" + b"%d?= <t%d@c.example.vn>" % (n, n) for n in range(60)),
]
BLOCKS = [*HEADS, *FIELDS, b"\r\n".join(FIELDS[:12])]


def standard(head: bytes) -> EmailMessage:
    msg = BytesParser(policy=default).parsebytes(head, headersonly=True)
    assert isinstance(msg, EmailMessage)
    return msg


def answer(ask: Callable[[], object]) -> object:
    """What a question returns, or the exception it raises (the standard policy raises on
    some hostile fields; ours must raise the same)."""
    try:
        return ask()
    except Exception as exc:  # compared, not hidden
        return ("raised", type(exc).__name__)


def field_answers(got: object) -> list[object]:
    return [
        type(got).__mro__[1:],  # a class per parse: compare what it is made of
        answer(lambda: str(got)),
        answer(lambda: [(type(d), str(d)) for d in got.defects]),  # type: ignore[attr-defined]
        answer(lambda: got.addresses),  # type: ignore[attr-defined]
        answer(lambda: got.datetime),  # type: ignore[attr-defined]
        answer(lambda: dict(got.params)),  # type: ignore[attr-defined]
    ]


def message_answers(msg: EmailMessage) -> list[object]:
    return [
        answer(msg.get_content_type),
        answer(msg.get_content_disposition),
        answer(msg.get_filename),
        answer(msg.get_boundary),
        answer(lambda: msg.get_all("From")),
        answer(lambda: bytes(msg)),
    ]


def same_answers(raw: bytes) -> None:
    head, _ = split_head(raw)
    ours, theirs = parse_head(raw), standard(head)
    for _ in range(2):  # the second time from the kept fields
        assert ours.keys() == theirs.keys()
        for (name, got), (_, want) in zip(ours.raw_items(), theirs.raw_items(), strict=True):
            assert got == want, name  # stored as cut, not parsed
        for name in set(ours.keys()):
            got = answer(lambda n=name: [field_answers(h) for h in ours.get_all(n, [])])
            want = answer(lambda n=name: [field_answers(h) for h in theirs.get_all(n, [])])
            assert got == want, name
        assert message_answers(ours) == message_answers(theirs)


@pytest.mark.parametrize("block", BLOCKS)
def test_fields_read_as_the_standard_policy_reads_them(block: bytes) -> None:
    same_answers(block + b"\r\n\r\nbody\r\n")


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_the_hostile_corpus_heads_read_as_the_standard_policy_reads_them(
    case: corpus.Case,
) -> None:
    raw = case.build()
    if b"\r\n\r\n" not in raw:
        return
    # The limits stage refuses a head that is too large, or whose originator fields are,
    # before anything parses it: only what passes those gates reaches parse_head (asking
    # the standard policy about a 200 KB From: takes seconds a time, for nothing)
    breach, _ = check_limits(raw, LimitsPolicy())
    problem = read_originator(raw).problem
    if (breach is not None and breach.reason.startswith("header-")) or (
        problem is not None and problem.reason.endswith("-too-large")
    ):
        assert case.code == 554
        return
    same_answers(raw)


def test_a_field_is_parsed_once_and_long_values_are_not_kept() -> None:
    raw = b"Subject: kept once\r\nX-Long: " + b"y" * (_MEMO_VALUE_MAX + 1) + b"\r\n\r\n"
    head = parse_head(raw)
    first = head["Subject"]
    assert parse_head(raw)["Subject"] is first  # the same object: not parsed again
    assert head["X-Long"] is not head["X-Long"]  # parsed at each access, never kept
    assert _field.cache_info().maxsize == _MEMO_FIELDS <= 64  # a sender cannot grow it


MESSAGE_IDS = [
    "<abc@def>",
    "  <cv12.2026@stc.daknong.gov.vn>  ",
    "<a@b> <c@d>",
    "<a@b><c@d>",
    "<a b@c>",
    "<a@b> (comment)",
    '<"q x"@b>',
    "<a@[192.0.2.1]>",
    "<=?utf-8?q?x?=@b>",
    "=?utf-8?q?x?=",
    "<a@b>\r\n\t",
    "<a@\r\n b>",
    "a@b",
    "<@b>",
    "<a@>",
    "<a@b",
    "<..@..>",
    "<a\x7f@b>",
    "<\u0111@b>",
    "",
]


@pytest.mark.parametrize("value", MESSAGE_IDS)
def test_message_id_reads_as_the_modern_policy_reads_it(value: str) -> None:
    """``InboundMessage.message_id`` takes a plain ``<left@right>`` as written and parses
    anything else: either way the modern policy's reading, stripped (the duplicate key of
    every stored message is made from it)."""
    raw = f"Message-ID: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode("utf-8", "surrogateescape")
    msg = InboundMessage(
        queue_id="Q1", mail_from="a@b", rcpt_tos=("c@d",), raw=raw, received_at=RECEIVED
    )
    assert msg.message_id == _policy_reading(raw)


def test_message_id_taken_as_written_only_when_plain() -> None:
    """Random ids over the characters that matter: the shortcut and the parse agree."""
    rng = random.Random(5)
    alphabet = "ab.@<>\"()[] \t=?\\,;:-_\u0111"
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        raw = f"Message-ID: {value}\r\n\r\n".encode()
        msg = InboundMessage(
            queue_id="Q1", mail_from="a@b", rcpt_tos=("c@d",), raw=raw, received_at=RECEIVED
        )
        assert msg.message_id == _policy_reading(raw), value


def _policy_reading(raw: bytes) -> str:
    """The modern policy's Message-ID, stripped; the field as written when it raises."""
    parsed = BytesParser(policy=default).parsebytes(raw)
    try:
        return str(parsed.get("Message-ID", "")).strip()
    except (HeaderParseError, IndexError, AttributeError):
        written = next((v for n, v in parsed.raw_items() if n.lower() == "message-id"), "")
        return "".join(written.splitlines()).strip()


def test_a_bounce_of_a_message_with_a_hostile_message_id_is_still_written() -> None:
    """The DSN quotes the original's Message-ID: one the email package's parser fails on
    is quoted as written instead of failing the bounce (the official would never learn
    the message did not go)."""
    original = (
        b"From: annv@stttt.example.vn\r\nTo: vanthu@snv.example.vn, <\r\n"
        b"Subject: =?utf-8?q?K=E1=BA=BF_ho=E1=BA=A1ch?=\r\nMessage-ID: <@stttt.example.vn>\r\n"
        b"\r\nN\xe1\xbb\x99i dung.\r\n"
    )
    composer = DsnComposer(
        PACKAGED_TEMPLATES / "outbound", hostname="mail.stttt.example.vn", domain="stttt.example.vn"
    )
    dsn = composer.compose(
        original,
        "annv@stttt.example.vn",
        [FailedRecipient("vanthu@snv.example.vn", "550 5.1.1 no such user", 550)],
        queued_at=RECEIVED,
    )
    assert b"<@stttt.example.vn>" in dsn
    assert field_text(parse_head(original), "To") == "vanthu@snv.example.vn, <"
    assert field_text(parse_head(original), "Subject") == "Kế hoạch"
    assert field_text(parse_head(original), "Cc") == ""
