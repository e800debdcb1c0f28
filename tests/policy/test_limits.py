"""policies/limits.yaml: the shipped file loads; invalid files name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.errors import ConfigError
from mailsvc.policy.limits import LimitsPolicy, load_limits_policy

SHIPPED = Path(__file__).parents[2] / "policies" / "limits.yaml"


def test_shipped_policy_matches_documented_defaults() -> None:
    policy = load_limits_policy(SHIPPED)
    assert policy.version
    assert policy.model_dump(exclude={"version"}) == LimitsPolicy().model_dump(exclude={"version"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("mime:\n  max_depth: 0\n", "mime.max_depth"),
        ("archives:\n  max_ratio: lots\n", "archives.max_ratio"),
        ("headers:\n  max_lines: 5\n", "headers.max_lines"),
        ("decoded: 5\n", "decoded"),
    ],
)
def test_invalid_policy_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_limits_policy(path)
    assert str(path) in str(caught.value)
    assert f"'{key}'" in str(caught.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        load_limits_policy(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("mime: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_limits_policy(broken)


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text('version: "t"\nmime:\n  max_parts: 50\n', encoding="utf-8")
    policy = load_limits_policy(path)
    assert policy.mime.max_parts == 50
    assert policy.mime.max_depth == LimitsPolicy().mime.max_depth
