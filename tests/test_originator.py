"""mailsvc.originator: the header section read as every reader reads it (table tests)."""

from __future__ import annotations

import time

import pytest

from mailsvc.originator import read_originator

TAIL = b"To: vanthu@sotttt.example.vn\r\nSubject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"From: a@b.vn\r\nFrom : c@d.vn\r\n", "header-name-whitespace"),
        (b"From\t: a@b.vn\r\n", "header-name-whitespace"),
        (b"From: a@b.vn\r\nSubject : x\r\n", "header-name-whitespace"),
        (b"From: a@b.vn\r\nFrom: c@d.vn\r\n", "from-count"),
        (b"Sender: a@b.vn\r\n", "from-count"),
        (b"From: a@b.vn, c@d.vn\r\n", "from-mailbox-count"),
        (b"From: a@b.vn\r\nSender: a@b.vn, c@d.vn\r\n", "from-mailbox-count"),
        (b"From: a@b.vn\r\nReply-To: a@b.vn\r\nReply-To: c@d.vn\r\n", "originator-repeated"),
        (b"From: g: a@b.vn, c@d.vn;\r\n", "address-header-unparsable"),
        (b"From: g:;\r\n", "address-header-unparsable"),
        (b"From: " + b"(" * 1500 + b"\r\n", "address-header-unparsable"),
        (b"From: A <a@b.vn\r\n", "address-header-unparsable"),
        (b"From: A <a@b.vn> trailing\r\n", "address-header-unparsable"),
        (b"From: \xff <a@b.vn>\r\n", "address-header-unparsable"),
        (b"From: a\r\n", "address-header-unparsable"),
        (b"From: " + b"(" * 3000 + b"\r\n", "address-header-too-large"),
        (b"From: a@b.vn\r\nX: a\rFrom: c@d.vn\r\n", "header-control-character"),
        (b"From: a@b.vn\r\nX: a\x00\r\n", "header-control-character"),
        (b"From: a@b.vn\r\nnot a field\r\n", "header-field-malformed"),
        (b" x: y\r\nFrom: a@b.vn\r\n", "header-field-malformed"),
        (b"From a@b.vn Sat Nov 21 08:00:00 2026\r\nFrom: a@b.vn\r\n", "header-field-malformed"),
    ],
)
def test_ambiguous_or_spoofing_headers_are_problems(head: bytes, reason: str) -> None:
    result = read_originator(head + TAIL)
    assert result.problem is not None and result.problem.reason == reason, result
    assert result.from_address == "" or reason in ("from-mailbox-count",)


@pytest.mark.parametrize(
    ("head", "address", "name"),
    [
        (b"From: a@b.vn\r\n", "a@b.vn", ""),
        (b"From: Nguyen Van A <A@B.vn>\r\n", "a@b.vn", "Nguyen Van A"),
        ("From: Nguyễn Văn A <a@b.vn>\r\n".encode(), "a@b.vn", "Nguyễn Văn A"),
        (b"From: =?utf-8?b?Tmd1eeG7hW4=?= <a@b.vn>\r\n", "a@b.vn", "Nguyễn"),
        (b"From: a@b.vn (Van thu)\r\n", "a@b.vn", ""),
        (b"From:\r\n a@b.vn\r\n", "a@b.vn", ""),
        (b'From: "boss@agency" <a@b.vn>\r\n', "a@b.vn", "boss@agency"),
    ],
)
def test_ordinary_from_fields_are_read(head: bytes, address: str, name: str) -> None:
    result = read_originator(head + TAIL)
    assert result.problem is None
    assert result.from_address == address
    assert result.from_[0].display_name == name


def test_a_huge_folded_from_is_refused_without_parsing_it() -> None:
    names = b"\r\n ".join(b'"N %d" <a%d@b.vn>,' % (i, i) for i in range(20_000))
    started = time.process_time()
    result = read_originator(b"From: " + names + b"\r\n" + TAIL)
    assert result.problem is not None and result.problem.reason == "address-header-too-large"
    # Linear scan only: parsing this with email.headerregistry takes seconds.
    assert time.process_time() - started < 1.0


def test_a_field_read_again_gives_the_same_answer_and_names_are_not_mixed_up() -> None:
    """The parse of a field is kept for the next message with the same field: the answer
    must not depend on whether it was kept, and the same value under another field name
    (where group syntax is allowed) must be judged by that field's rules."""
    group = b"undisclosed: a@b.vn;"
    first = read_originator(b"From: x@y.vn\r\nReply-To: " + group + b"\r\n" + TAIL)
    again = read_originator(b"From: x@y.vn\r\nReply-To: " + group + b"\r\n" + TAIL)
    assert first == again and first.problem is None
    as_from = read_originator(b"From: " + group + b"\r\n" + TAIL)
    assert as_from.problem is not None and as_from.problem.reason == "address-header-unparsable"
    refused = [read_originator(b"From: A <a@b.vn\r\n" + TAIL).problem for _ in range(2)]
    assert refused[0] == refused[1] and refused[0] is not None
    # one byte apart: not confused with the kept parse of the other
    one = read_originator(b"From: Van thu <a@b.vn>\r\n" + TAIL)
    other = read_originator(b"From: Van thu <a@c.vn>\r\n" + TAIL)
    assert (one.from_address, other.from_address) == ("a@b.vn", "a@c.vn")


def test_a_field_over_the_cap_is_refused_without_being_kept() -> None:
    """The kept parses are bounded by the cap (512 fields of at most 2 KB): a sender's
    100 KB fields, each different, are refused and never kept."""
    from mailsvc.originator import _parse_capped

    before = _parse_capped.cache_info().currsize
    for n in range(3):
        huge = b"From: " + b"%d" % n + b"a" * 100_000 + b"@b.vn\r\n"
        problem = read_originator(huge + TAIL).problem
        assert problem is not None and problem.reason == "address-header-too-large"
    assert _parse_capped.cache_info().currsize == before
