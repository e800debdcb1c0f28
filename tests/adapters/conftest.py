"""Adapter tests: a real clamd (see tests/clamd_fixture.py)."""

from tests.clamd_fixture import clamd_service  # noqa: F401
