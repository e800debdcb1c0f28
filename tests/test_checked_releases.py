"""The release check the speed-up modules share: an installed release that is not among
the checked ones keeps the library's own functions, and says so in the log."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

from mailsvc.checked_releases import releases_checked

log = logging.getLogger("tests.checked_releases")


def test_installed_releases_are_checked() -> None:
    checked = {name: frozenset({version(name)}) for name in ("dkimpy", "aiosmtplib", "pyhanko")}
    assert releases_checked(checked, log)


def test_another_release_is_not(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    checked = {"dkimpy": frozenset({version("dkimpy")}), "aiosmtplib": frozenset({"0.0.1"})}
    assert not releases_checked(checked, log)
    [record] = caplog.records
    assert "aiosmtplib" in record.getMessage() and "not checked" in record.getMessage()
