"""serve caps glibc's malloc arenas for itself and the programs it starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mailsvc.supervisor import limit_malloc_arenas


def test_children_inherit_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    limit_malloc_arenas()
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['MALLOC_ARENA_MAX'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "2"


@pytest.mark.parametrize("value", ["4", "not-a-number"])
def test_an_operators_setting_is_kept(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", value)
    limit_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == value
