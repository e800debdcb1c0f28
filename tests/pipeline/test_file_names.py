"""Attachment file names a clerk must not be shown (mailsvc.pipeline.limits.file_name_problem):
the shortcut for plain ASCII fields answers as the email package's reading does."""

from __future__ import annotations

import pytest

from mailsvc.pipeline.limits import _parsed_name_problem, file_name_problem

FIELDS = [
    (b'attachment; filename="qd-12.pdf"', b'application/pdf; name="qd-12.pdf"'),
    (b"attachment; filename=qd-12.pdf", b"application/pdf"),
    (b"inline", b"text/plain; charset=utf-8"),
    (b'attachment; filename="a=b.pdf"', b"application/pdf"),
    (b'attachment; filename="a\\\\b.pdf"', b"application/pdf"),
    (b'attachment; filename="a\\"b.pdf"', b"application/pdf"),
    (b'attachment; filename="a\tb.pdf"', b"application/pdf"),  # a tab in the name
    (b"attachment;\tfilename=a.pdf", b"application/pdf"),  # folded with a tab
    (b'attachment; filename="a\x01b.pdf"', b"application/pdf"),
    (b'attachment; filename="a\x7fb.pdf"', b"application/pdf"),
    (b"attachment; filename*=utf-8''a%E2%80%AEfdp.exe", b"application/octet-stream"),
    (b"attachment; filename*=utf-8''a%0Ab.pdf", b"application/pdf"),
    (b"attachment; filename*=utf-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh.pdf", b"application/pdf"),
    (b"attachment; filename*0=a; filename*1=%00.pdf", b"application/pdf"),
    (b'attachment; filename="=?utf-8?b?aG9hLWRvbi3igK5mZHAuZXhl?="', b"application/pdf"),
    (b"attachment", b'application/pdf; name="=?utf-8?q?a=E2=80=8Bb.pdf?="'),
    (b"attachment", b'application/pdf; name="=?utf-8?q?Quy=E1=BA=BFt.pdf?="'),
    (b'attachment; filename="hoa-don-\xe2\x80\xaefdp.exe"', b"application/pdf"),
    (b'attachment; filename="b\xe1o-c\xe1o.pdf"', b"application/pdf"),  # Latin-1 bytes
    (b'attachment; filename="b\xc3\xa1o-c\xc3\xa1o.pdf"', b"application/pdf"),
    (b'attachment; filename="' + b"x" * 5000 + b'.pdf"', b"application/pdf"),
    (b"attachment; filename=", b"application/pdf; name="),
    (b'attachment; filename="unterminated', b"application/pdf"),
    (b"", b""),
]


@pytest.mark.parametrize(("disposition", "content_type"), FIELDS)
def test_same_answer_as_the_parsed_names(disposition: bytes, content_type: bytes) -> None:
    assert file_name_problem(disposition, content_type) == _parsed_name_problem(
        disposition, content_type
    )


def test_the_deceptive_names_are_still_found() -> None:
    problems = [file_name_problem(d, c) for d, c in FIELDS]
    assert problems[6].startswith("U+0009")
    assert problems[8].startswith("U+0001")
    assert problems[9].startswith("U+007F")
    assert problems[10].startswith("U+202E")
    assert problems[11].startswith("U+000A")
    assert problems[14].startswith("U+202E")
    assert problems[15].startswith("U+200B")
    assert problems[17].startswith("U+202E")
    assert problems[18] == "file name is not valid UTF-8"
    assert problems[0] == problems[12] == problems[16] == problems[19] == ""
