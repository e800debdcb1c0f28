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


def unreadable(*failures: tuple[str, str]) -> str:
    from mailsvc.documents.extract import ExtractionFailure
    from mailsvc.pipeline.classification import ClassificationResult

    result = ClassificationResult(
        matches=(),
        deciding=None,
        policy_version="1",
        message_sha256="0" * 64,
        unreadable=tuple(
            ExtractionFailure(loc, kind, "application/pdf", "0" * 64) for loc, kind in failures
        ),
    )
    return refused("classification", "unreadable-content", "", result)


def test_an_unreadable_attachment_refusal_says_which_and_why() -> None:
    """The sender can act on it: send it unencrypted, undamaged, smaller, or a clearer
    scan (one text for every kind told them nothing)."""
    assert unreadable(("attachment 2", "encrypted")) == (
        "554 5.7.1 Message refused: an attachment (attachment 2) cannot be read: it is "
        "encrypted (nothing here holds its key or password)"
    )
    assert unreadable(("attachment 1 > member 3", "corrupt")) == (
        "554 5.7.1 Message refused: an attachment (attachment 1 > member 3) cannot be read: "
        "it is damaged"
    )
    assert unreadable(("attachment 1", "too-large"), ("attachment 2", "too-large")) == (
        "554 5.7.1 Message refused: an attachment cannot be read: it is too large to inspect"
    )
    assert unreadable(("attachment 1", "illegible")).endswith("a scan with no legible text")
    # several kinds at once: the one text for all
    assert unreadable(("attachment 1", "corrupt"), ("attachment 2", "encrypted")) == (
        "554 5.7.1 Message refused: an attachment cannot be read (damaged, encrypted or "
        "too large to inspect)"
    )
    # a location from a hostile archive's member names stays one printable line
    assert "\r" not in unreadable(("attachment 1 > \r\nX", "corrupt"))
