"""mailsvc.headers: the trace fields we write can never carry a field of their own."""

from __future__ import annotations

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
