"""mailsvc.message.parse_tree: the worker's one parse must build the feed parser's own tree.

Every stage in the worker (extraction, classification, spam rules, metadata, the register's
attachments, the exchange status) reads this tree, so a message the fast path reads
differently from ``email.message_from_bytes`` would let a sender show the checks one thing
and the clerk's mail client another. Each case compares the whole tree: header fields in
order, preambles, epilogues, default types, and every leaf's payload, and the serialised
bytes; hostile structure and random damage included.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.message import fast_tree, parse_tree
from tests import hostile_mail
from tests.hostile import corpus
from tests.hostile.damage import DAMAGE_SETTINGS, Edit, damaged, edits


def same_tree(got: Message, want: Message, path: str = "/") -> None:
    assert got._headers == want._headers, path
    assert got.preamble == want.preamble, path
    assert got.epilogue == want.epilogue, path
    assert got.get_default_type() == want.get_default_type(), path
    assert got.get_unixfrom() == want.get_unixfrom(), path
    assert [type(d) for d in got.defects] == [type(d) for d in want.defects], path
    assert got.is_multipart() == want.is_multipart(), path
    if want.is_multipart():
        got_parts, want_parts = got.get_payload(), want.get_payload()
        assert len(got_parts) == len(want_parts), path
        for n, (g, w) in enumerate(zip(got_parts, want_parts, strict=True)):
            same_tree(g, w, f"{path}{n}/")
    else:
        # The stored payload: get_payload() decodes 8-bit text with the declared charset
        # and raises on some (charset="\0utf-8", "idna"), the same for both trees.
        assert got._payload == want._payload, path


def check(raw: bytes) -> Message:
    want = email.message_from_bytes(raw, policy=email.policy.compat32)
    got = parse_tree(raw)
    same_tree(got, want)
    try:
        serialised = want.as_bytes()
    except (UnicodeError, LookupError) as exc:  # the generator's own limits: same for both
        with pytest.raises(type(exc)):
            got.as_bytes()
    else:
        assert got.as_bytes() == serialised
    return got


def document(linesep: str = "\r\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "vanthu@sotc.example.vn"
    msg["To"] = "vanthu@stc.example.vn"
    msg["Subject"] = "Quyết định số 12/QĐ-UBND"
    msg.set_content("Kính gửi Văn thư.\nXin gửi văn bản.\n")
    msg.add_alternative("<p>Kính gửi <b>Văn thư</b>.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.7\n" + bytes(range(256)) * 300, maintype="application",
                       subtype="pdf", filename="qd-12.pdf")  # fmt: skip
    inner = EmailMessage()
    inner["Subject"] = "Chuyển tiếp"
    inner.set_content("Nội dung chuyển tiếp.\n")
    msg.add_attachment(inner)
    msg.add_attachment("Ghi chú\n", subtype="plain", filename="ghi-chu.txt", cte="quoted-printable")
    return msg.as_bytes(policy=email.policy.default.clone(linesep=linesep))


def test_a_document_message_is_built_without_the_feed_parser() -> None:
    raw = document()
    got = check(raw)
    assert fast_tree(raw) is not None  # built without the feed parser
    assert [p.get_content_type() for p in got.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/pdf", "message/rfc822", "text/plain", "text/plain",
    ]  # fmt: skip
    pdf = got.get_payload()[1]
    assert isinstance(pdf, Message)
    assert pdf.get_payload(decode=True)[:9] == b"%PDF-1.7\n"


def test_line_feed_only_messages() -> None:
    raw = document("\n")
    check(raw)
    assert fast_tree(raw) is not None


def head(ctype: str = 'multipart/mixed; boundary="b1"') -> bytes:
    return f"From: a@b.example.vn\r\nSubject: x\r\nContent-Type: {ctype}\r\n\r\n".encode()


HOSTILE = {
    "preamble and epilogue": head() + b"pre\r\n--b1\r\nA: 1\r\n\r\nx\r\n--b1--\r\nepi\r\n",
    "blank lines around": head() + b"\r\n\r\n--b1\r\nA: 1\r\n\r\nx\r\n\r\n--b1--\r\n\r\n",
    "close at the end, no line break": head() + b"--b1\r\nA: 1\r\n\r\nx\r\n--b1--",
    "close never comes": head() + b"--b1\r\nA: 1\r\n\r\nx\r\n",
    "no delimiter at all": head() + b"just text\r\n",
    "parts after the close": head()
    + b"--b1\r\nA: 1\r\n\r\nx\r\n--b1--\r\n--b1\r\nA: 2\r\n\r\nhidden\r\n--b1--\r\n",
    "delimiter with trailing spaces": head() + b"--b1  \r\nA: 1\r\n\r\nx\r\n--b1-- \t\r\n",
    "delimiter-like line in a body": head() + b"--b1\r\nA: 1\r\n\r\n--b1x\r\n --b1\r\n--b1--\r\n",
    "part without header": head() + b"--b1\r\n\r\nno header\r\n--b1--\r\n",
    "part without blank line": head() + b"--b1\r\nA: 1\r\n--b1--\r\n",
    "empty part": head() + b"--b1\r\n--b1--\r\n",
    "bare CR": head() + b"--b1\r\nA: 1\r\n\r\nx\ry\r\n--b1--\r\n",
    "bare CR ends a delimiter": head() + b"--b1\rA: 1\r\n\r\nx\r\n--b1--\r\n",
    "mixed line breaks": head() + b"--b1\nA: 1\n\r\nx\r\n--b1--\n",
    "no boundary parameter": head("multipart/mixed") + b"--b1\r\nA: 1\r\n\r\nx\r\n--b1--\r\n",
    "nested, inner boundary extends the outer": head()
    + b'--b1\r\nContent-Type: multipart/mixed; boundary="b1x"\r\n\r\n--b1x\r\n\r\nin\r\n'
    + b"--b1x--\r\n--b1--\r\n",
    "nested, same boundary": head()
    + b'--b1\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nA: 1\r\n\r\nin\r\n'
    + b"--b1--\r\n--b1--\r\n",
    "nested, inner never closed": head()
    + b'--b1\r\nContent-Type: multipart/mixed; boundary="c2"\r\n\r\n--c2\r\nA: 1\r\n\r\nin\r\n'
    + b"--b1\r\nA: 2\r\n\r\nout\r\n--b1--\r\n",
    "digest": head('multipart/digest; boundary="b1"')
    + b"--b1\r\n\r\nSubject: inner\r\n\r\nbody\r\n--b1--\r\n",
    "delivery status": head('multipart/report; boundary="b1"')
    + b"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
    + b"Final-Recipient: rfc822; y\r\n--b1--\r\n",
    "rfc822 without head": head('multipart/mixed; boundary="b1"')
    + b"--b1\r\nContent-Type: message/rfc822\r\n\r\n\r\nbody only\r\n--b1--\r\n",
    "header line without colon": b"From: a@b.example.vn\r\nnot a header\r\nSubject: x\r\n\r\n",
    "continuation first": b" folded\r\nFrom: a@b.example.vn\r\n\r\nbody\r\n",
    "mbox From line": b"From someone Sat Dec  5 10:00:00 2026\r\nFrom: a@b.example.vn\r\n\r\nx\r\n",
    "no body": b"From: a@b.example.vn\r\nSubject: x\r\n",
    "starts with a blank line": b"\r\nFrom: a@b.example.vn\r\n\r\nx\r\n",
    "8-bit body": b"From: a@b.example.vn\r\n\r\nK\xc3\xadnh g\xe1\xbb\xadi\xff\r\n",
    "NUL in body": b"From: a@b.example.vn\r\n\r\nx\x00y\r\n",
    "deep nesting": head()
    + b"".join(
        f'--b{n}\r\nContent-Type: multipart/mixed; boundary="b{n + 1}"\r\n\r\n'.encode()
        for n in range(1, 30)
    )
    + b"--b30\r\nA: 1\r\n\r\nleaf\r\n--b30--\r\n"
    + b"".join(f"--b{n}--\r\n".encode() for n in range(29, 0, -1)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_structure_reads_as_the_feed_parser_reads_it(name: str) -> None:
    check(HOSTILE[name])
    # what the fast path models itself; the rest it leaves to the feed parser
    assert (fast_tree(HOSTILE[name]) is not None) == (name in FAST)


FAST = {
    "preamble and epilogue",
    "blank lines around",
    "close at the end, no line break",
    "delimiter with trailing spaces",
    "delimiter-like line in a body",
    "mixed line breaks",
    "8-bit body",
    "NUL in body",
}


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_the_hostile_corpus_reads_as_the_feed_parser_reads_it(case: corpus.Case) -> None:
    check(case.build())


def test_the_virus_builders_read_as_the_feed_parser_reads_them() -> None:
    for name in ("clean", "eicar_plain"):
        check(getattr(hostile_mail, name)())


SEEDS = [
    document(),
    document("\n"),
    HOSTILE["preamble and epilogue"],
    HOSTILE["nested, inner never closed"],
    HOSTILE["nested, inner boundary extends the outer"],
]
DAMAGE = [b"\r", b"\n", b"\r\n", b"-", b"--", b"--b1", b"--b1--", b" ", b":",
          b"\r\n\r\n", b"=", b"\x00", b"\xff"]  # fmt: skip


@DAMAGE_SETTINGS
@given(seed=st.sampled_from(SEEDS), changes=edits(DAMAGE))
def test_damaged_messages_read_as_the_feed_parser_reads_them(
    seed: bytes, changes: list[Edit]
) -> None:
    """Bytes inserted or cut at random places (in heads, at delimiters, in bodies)."""
    check(damaged(seed, changes))
