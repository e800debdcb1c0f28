"""The DATA replies for refusals name what the deciding stage's typed payload holds: the
domain an origin check judged, the virus clamd named."""

from __future__ import annotations

from mailsvc.pipeline.antivirus import ScanResult
from mailsvc.pipeline.authentication import (
    DkimResults,
    DkimSignatureResult,
    DmarcOutcome,
    SpfOutcome,
    SpfResult,
)
from mailsvc.smtp import replies
from mailsvc.verdict import Action, Finding, Payload, Status, Verdict


def refused(stage: str, reason: str, detail: str, payload: Payload | None) -> str:
    finding = Finding(stage, Status.FAIL, reason, detail=detail, payload=payload)
    return replies.for_verdict(Verdict("Q1", (finding,), Action.REJECT, deciding=finding))


def test_a_dmarc_refusal_names_the_from_domain() -> None:
    reply = refused(
        "authentication",
        "dmarc-reject",
        "no aligned DKIM or SPF pass for stp.example.vn",
        DmarcOutcome("fail", "stp.example.vn"),
    )
    assert reply == (
        "550 5.7.26 sender not authenticated for stp.example.vn: "
        "no aligned DKIM or SPF pass for stp.example.vn"
    )


def test_an_spf_refusal_names_the_checked_domain() -> None:
    outcome = SpfOutcome(SpfResult.FAIL, "sotc.example.vn", "mailfrom", "192.0.2.9 not permitted")
    reply = refused("authentication", "spf-fail", outcome.detail, outcome)
    assert reply.startswith("550 5.7.26 sender not authenticated for sotc.example.vn: 192.0.2.9")


def test_a_dkim_refusal_names_no_domain() -> None:
    """d= may be anyone's: a DKIM failure does not say whose the mail is."""
    results = DkimResults((DkimSignatureResult("fail", "lists.example.org", "k1", "bad body"),))
    reply = refused("authentication", "dkim-fail", "lists.example.org/k1: fail", results)
    assert reply.startswith("550 5.7.26 sender not authenticated for unknown: ")


def test_a_virus_refusal_names_the_signature_on_one_line() -> None:
    scan = ScanResult(size=68, signature="Win.Test.EICAR_HDB-1")
    reply = refused("antivirus", "virus-found", "clamd: Win.Test.EICAR_HDB-1", scan)
    assert reply == "554 5.7.1 Message refused: virus detected (Win.Test.EICAR_HDB-1)"
    hostile = refused("antivirus", "virus-found", "", ScanResult(68, "Bad\r\nName"))
    assert hostile == "554 5.7.1 Message refused: virus detected (Bad??Name)"
    assert refused("antivirus", "virus-found", "", None).endswith("(unknown)")
