"""mailsvc.headers: the trace fields we write can never carry a field of their own."""

from __future__ import annotations

import email
from email.policy import default

import pytest

from mailsvc import headers


@pytest.mark.parametrize(
    "value", ["mx\rX-Injected: yes", "mx\r\nX-Injected: yes", "mx\nX: y", "a\x00b", "a\x7fb"]
)
def test_control_characters_in_a_value_are_refused(value: str) -> None:
    with pytest.raises(headers.HeaderValueError):
        headers.prepend(b"", [("X-Mailsvc-Test", value)])


@pytest.mark.parametrize("name", ["X Bad", "X:Bad", "", "Tiêu-đề"])
def test_bad_field_names_are_refused(name: str) -> None:
    with pytest.raises(headers.HeaderValueError):
        headers.prepend(b"", [(name, "v")])


def test_ordinary_values_are_written_and_folded() -> None:
    raw = headers.prepend(b"body", [("Received", "from mx ([192.0.2.1]); " + "x; " * 40)])
    assert raw.startswith(b"Received: from mx ([192.0.2.1]);\r\n\t")
    assert headers.prepend(b"", [("Subject", "Công văn\tsố 12")]).startswith(b"Subject: =?utf-8?")


def test_encode_fields_encodes_display_names_and_unstructured_values() -> None:
    raw = headers.encode_fields(
        [
            ("From", "Hệ thống thư công vụ <postmaster@stttt.example.vn>"),
            ("To", "vanthu@sender.gov.vn, Văn thư <vt@b.gov.vn>"),
            ("Subject", "Đã tiếp nhận: Công văn số 123/UBND-VP về việc triển khai " * 3),
            ("Message-ID", "<1@stttt.example.vn>"),
        ]
    )
    assert raw.isascii() and raw.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    parsed = email.message_from_bytes(raw + b"\r\n", policy=default)
    assert parsed["From"].addresses[0].display_name == "Hệ thống thư công vụ"
    assert parsed["From"].addresses[0].addr_spec == "postmaster@stttt.example.vn"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["vanthu@sender.gov.vn", "vt@b.gov.vn"]
    assert parsed["Subject"] == "Đã tiếp nhận: Công văn số 123/UBND-VP về việc triển khai " * 3
    assert parsed["Message-ID"] == "<1@stttt.example.vn>"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("From", "Kẻ giả <a@b.vn>\r\nBcc: victim@c.vn"),
        ("Subject", "Tiêu đề\nX-Injected: 1"),
        ("To", "Người nhận <ngườinhận@b.vn>"),
    ],
)
def test_encode_fields_refuses_injection_and_non_ascii_addresses(name: str, value: str) -> None:
    with pytest.raises(headers.HeaderValueError):
        headers.encode_fields([(name, value)])
