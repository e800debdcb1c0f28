"""The organisation key's guards: the PIN file must be private, a key file needs an
explicit allow_file_key and is warned about at start, and numbers stay gapless."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.config import Settings, load_settings
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.errors import ConfigError
from mailsvc.message import InboundMessage
from mailsvc.outgoing.issuing import (
    PIN_ENV,
    check_file_key,
    draft_recipients,
    next_outgoing_number,
    read_pin,
)


def test_pin_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    pin = tmp_path / "token.pin"
    pin.write_text("24681357\n", encoding="utf-8")
    pin.chmod(0o644)
    settings = load_settings_text(tmp_path, '[issuing]\npin_file = "token.pin"\n')
    with pytest.raises(ConfigError, match="readable by others") as info:
        read_pin(settings)
    assert "24681357" not in str(info.value)
    pin.chmod(0o600)
    assert read_pin(settings) == "24681357"


def test_pin_from_the_environment_only_when_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings_text(tmp_path, "")
    monkeypatch.delenv(PIN_ENV, raising=False)
    with pytest.raises(ConfigError, match=PIN_ENV):
        read_pin(settings)
    monkeypatch.setenv(PIN_ENV, "97531")
    assert read_pin(settings) == "97531"


def test_key_file_needs_allow_file_key_and_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refused = load_settings_text(tmp_path, '[issuing]\nkey_file = "org.key"\n')
    with pytest.raises(ConfigError, match="allow_file_key is false"):
        check_file_key(refused)
    allowed = load_settings_text(
        tmp_path, '[issuing]\nkey_file = "org.key"\nallow_file_key = true\n'
    )
    with caplog.at_level(logging.WARNING, logger="mailsvc.outgoing.issuing"):
        check_file_key(allowed)
    assert "not a PKCS#11 token" in caplog.text


def test_outgoing_numbers_are_gapless_across_a_rollback(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            assert next_outgoing_number(session, 2026) == 1
        with sessions() as session:  # signing failed: rolled back
            assert next_outgoing_number(session, 2026) == 2
            session.rollback()
        with sessions.begin() as session:
            assert next_outgoing_number(session, 2026) == 2
            assert next_outgoing_number(session, 2027) == 1
    finally:
        engine.dispose()


def load_settings_text(home: Path, text: str) -> Settings:
    (home / "mailsvc.toml").write_text(text, encoding="utf-8")
    return load_settings(home, environ={})


@pytest.mark.parametrize(
    "to",
    [
        "phathanh@stttt.example.vn, <",  # the email package's parser raises IndexError
        "phathanh@stttt.example.vn, *@[b\\\\:@ ",  # ... and AttributeError
    ],
)
def test_draft_recipients_read_to_and_cc_as_written(to: str) -> None:
    """A draft's To:/Cc: are read as written: a value the email package's parser fails
    on (this runs in the acceptance's transaction, where an exception is a 451 at every
    retry) still yields the addresses in it and in the other field."""
    raw = (
        f"From: annv@stttt.example.vn\r\nTo: {to}\r\nCc: Sở Nội vụ <vanthu@snv.example.vn>\r\n"
        "Subject: Dự thảo kế hoạch\r\n\r\nNội dung.\r\n"
    ).encode()
    msg = InboundMessage(
        queue_id="Q1",
        mail_from="annv@stttt.example.vn",
        rcpt_tos=("phathanh@stttt.example.vn",),
        raw=raw,
        received_at=datetime(2026, 12, 6, 1, 0, tzinfo=UTC),
    )
    found = draft_recipients(
        msg,
        msg.rcpt_tos,
        dispatch="phathanh@stttt.example.vn",
        is_local_domain=lambda domain: domain == "stttt.example.vn",
        directory=None,
    )
    assert found == ["vanthu@snv.example.vn"]
