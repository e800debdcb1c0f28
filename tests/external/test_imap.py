"""The small pieces of the external-mailbox client: password files, folder names, senders."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailsvc.errors import ConfigError
from mailsvc.external.imap import encode_folder, read_password
from mailsvc.external.poller import return_path


def test_password_file_must_not_be_readable_by_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "so-khac.password"
    path.write_text("Mat-khau-2026\n", encoding="utf-8")
    path.chmod(0o600)
    assert read_password(path, "external[0].password_file") == "Mat-khau-2026"

    path.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        assert read_password(path, "external[0].password_file") == "Mat-khau-2026"
    assert "readable by its group" in caplog.text

    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"external\[0\].password_file.*chmod 600"):
        read_password(path, "external[0].password_file")

    path.write_text("\n", encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        read_password(path, "external[0].password_file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_password(tmp_path / "missing", "external[0].password_file")


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Văn bản đến", "V&AQM-n b&HqM-n &AREevw-n"),
        ("Thư đã gửi & lưu", "Th&AbA- &AREA4w- g&Hu0-i &- l&AbA-u"),  # "-" even before a space
        ("R&D", "R&-D"),
        ("\u03ff", "&A,8-"),  # base64 "/" becomes ","
        ('Sổ "đến"', 'S&HtU- \\"&AREevw-n\\"'),  # quotes escaped in the quoted string
    ],
)
def test_folder_names_use_modified_utf7(name: str, wire: str) -> None:
    # RFC 3501 5.1.3, as a quoted string
    assert encode_folder(name) == f'"{wire}"'


def test_return_path_is_the_envelope_sender() -> None:
    raw = b"Return-Path: <VanThu@UBND.example.vn>\r\nFrom: a@b.vn\r\n\r\nbody\r\n"
    assert return_path(raw) == "vanthu@ubnd.example.vn"
    assert return_path(b"Return-Path: <>\r\nFrom: a@b.vn\r\n\r\nx\r\n") == ""
    assert return_path(b"From: a@b.vn\r\n\r\nReturn-Path: <x@y.vn>\r\n") == ""
