"""The generated freshclam.conf: what the clamav settings write, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.adapters.freshclam import render_freshclam_config
from mailsvc.config import load_settings
from mailsvc.errors import ConfigError


def settings(home: Path, clamav: dict[str, str]) -> object:
    environ = {f"MAILSVC_CLAMAV__{k.upper()}": v for k, v in clamav.items()}
    return load_settings(home, environ=environ)


def test_attempts_and_mirror_are_written_as_one_directive_each(tmp_path: Path) -> None:
    conf = render_freshclam_config(
        settings(tmp_path, {"update_attempts": "1", "update_mirror": "http://mirror.internal:8000"})  # type: ignore[arg-type]
    ).splitlines()
    assert "MaxAttempts 1" in conf
    assert "PrivateMirror http://mirror.internal:8000" in conf
    assert "MaxAttempts 3" in render_freshclam_config(settings(tmp_path, {})).splitlines()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("update_attempts", "0"),
        ("update_attempts", "11"),
        ("update_attempts", "3\nPrivateMirror http://evil.example"),
        ("update_mirror", "http://mirror.internal\nDatabaseOwner root"),
        ("update_mirror", "http://mirror.internal DatabaseOwner"),
        ("update_mirror", "ftp://mirror.internal"),
        ("update_mirror", "mirror.internal\x00"),
    ],
)
def test_a_value_that_would_add_or_break_a_directive_is_refused(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"clamav.{key}"):
        settings(tmp_path, {key: value})
