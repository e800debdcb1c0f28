"""The openspf SPF test suites, run through the real AuthenticationStage.

tests/data/spf holds the RFC 7208 suite (203 tests) and the RFC 4408 suite (191 tests)
as published in pyspf's source distribution, with their licence notices. Each test's DNS
comes from its scenario's zone data through ``tests.spf_zone.ZoneResolver``; the stage
is built as app.py builds it (default policy, a directory that pins nothing), the message
carries the test's client IP, HELO and MAIL FROM, and the ``spf`` finding must give one
of the expected results (and the expected explanation, where the suite gives one:
"DEFAULT" there means the domain published none).
"""

from __future__ import annotations

import datetime as dt

import pytest

from mailsvc.interfaces import AgencyInfo
from mailsvc.message import Direction, InboundMessage
from mailsvc.pipeline.authentication import AuthenticationStage, SpfOutcome
from mailsvc.policy.authentication import AuthenticationPolicy
from tests.spf_zone import SpfCase, ZoneResolver, load_suite

RFC7208 = load_suite("rfc7208-tests.yml")
RFC4408 = load_suite("rfc4408-tests.yml")

RAW = (
    b"From: Sender <sender@example.com>\r\nTo: vanthu@sotttt.example.vn\r\n"
    b"Subject: SPF suite\r\nMessage-ID: <suite@example.com>\r\n\r\nBody.\r\n"
)


class NoAgencies:
    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        return None

    def is_local_domain(self, domain: str) -> bool:
        return False


async def run_case(case: SpfCase) -> SpfOutcome:
    stage = AuthenticationStage(
        NoAgencies(), ZoneResolver(case.zone), AuthenticationPolicy(), "mx.sotttt.example.vn"
    )
    msg = InboundMessage(
        queue_id="SUITE",
        mail_from=case.mailfrom.lower(),
        mail_from_as_sent=case.mailfrom,
        rcpt_tos=("vanthu@sotttt.example.vn",),
        raw=RAW,
        received_at=dt.datetime(2026, 12, 5, 2, 0, tzinfo=dt.UTC),
        client_ip=case.host,
        client_helo=case.helo,
        direction=Direction.INBOUND,
    )
    findings = await stage.inspect(msg)
    spf = [f for f in findings if f.reason.startswith("spf-")]
    assert len(spf) == 1
    outcome = spf[0].payload
    assert isinstance(outcome, SpfOutcome)
    assert spf[0].reason == f"spf-{outcome.result.value}"
    return outcome


def check(case: SpfCase, outcome: SpfOutcome) -> None:
    assert outcome.result.value in case.results, (
        f"{case.id} (RFC {case.spec}): got {outcome.result.value}, "
        f"expected {' or '.join(case.results)}: {outcome.detail}"
    )
    if case.explanation is not None:
        expected = "" if case.explanation == "DEFAULT" else case.explanation
        assert outcome.explanation == expected, case.id


def test_suites_are_complete() -> None:
    assert len(RFC7208) == 203
    assert len(RFC4408) == 191


@pytest.mark.parametrize("case", RFC7208, ids=lambda c: c.name)
async def test_rfc7208_suite(case: SpfCase) -> None:
    check(case, await run_case(case))


@pytest.mark.parametrize("case", RFC4408, ids=lambda c: c.name)
async def test_rfc4408_suite(case: SpfCase) -> None:
    check(case, await run_case(case))
