"""Every SMTP reply mailsvc gives, in one place. Peers get a standard code and a
generic but precise text; details go to the log under the queue id."""

from __future__ import annotations

from mailsvc.outcome import Accepted, DeferReason, Deferred, Outcome, Refused
from mailsvc.pipeline.antivirus import ScanResult
from mailsvc.pipeline.authentication import DmarcOutcome, SpfOutcome
from mailsvc.pipeline.classification import ClassificationResult
from mailsvc.verdict import Action, Finding, Verdict

SENDER_OK = "250 2.1.0 OK"
RECIPIENT_OK = "250 2.1.5 OK"
OK_QUEUED = "250 2.0.0 OK queued as {queue_id}"
OK_DUPLICATE = "250 2.0.0 OK already received as {queue_id}"

# RCPT / MAIL
UNKNOWN_USER = "550 5.1.1 <{address}>: recipient address rejected: user unknown"
MAILBOX_DISABLED = "550 5.2.1 <{address}>: mailbox disabled"
RELAY_DENIED = "554 5.7.1 <{address}>: relay access denied"
RELAY_NOT_CONFIGURED = "550 5.7.1 <{address}>: no outbound relay is configured on this server"
SENDER_NOT_OWNED = "553 5.7.1 <{address}>: sender address not owned by authenticated user"
FROM_NOT_OWNED = "553 5.7.1 From: header address not owned by authenticated user"
FROM_NAME_NOT_OWNED = (
    "553 5.7.1 From: display name shows an address not owned by authenticated user"
)
SENDER_FIELD_NOT_OWNED = "553 5.7.1 Sender: header address not owned by authenticated user"
SENDER_NAME_NOT_OWNED = (
    "553 5.7.1 Sender: display name shows an address not owned by authenticated user"
)
RESENT_NOT_OWNED = "553 5.7.1 {field}: header address not owned by authenticated user"
RESENT_NAME_NOT_OWNED = (
    "553 5.7.1 {field}: display name shows an address not owned by authenticated user"
)
NULL_SENDER_NOT_REPORT = (
    "553 5.7.1 The null sender <> is only for delivery and read reports (multipart/report)"
)
BAD_HELO = "501 5.5.2 Invalid host name: a domain name or address literal is required"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
BAD_ADDRESS = "501 5.1.3 Bad address syntax"

# Connection / rate
SHUTTING_DOWN = "421 4.3.2 {hostname} Service shutting down, try again later"
TIMEOUT = "421 4.4.2 {hostname} Error: timeout exceeded"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try later"
RATE_LIMITED = "451 4.7.1 Message rate limit exceeded, try later"
REMOTE_RATE_LIMITED = (
    "451 4.7.1 Too many recipients at other servers from this account in the last hour, try later"
)
AUTH_LOCKED = "454 4.7.0 Too many failed logins, try again after {until}"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_MUST_CHANGE = "535 5.7.8 One-time password: set a new password at {url} before using mail"
AUTH_DISABLED = "535 5.7.8 Account disabled, contact the administrator"

# DATA (the first six keep aiosmtpd's own wording: mailsvc reads DATA itself)
OK = "250 OK"
NEED_RCPT = "503 Error: need RCPT command"
DATA_SYNTAX = "501 Syntax: DATA"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
DATA_TOO_LARGE = "552 Error: Too much mail data"
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TEMPFAIL = "451 4.7.0 Temporary failure in message checks, try again later"
DELIVERY_TEMPFAIL = "451 4.3.0 Temporary failure storing the message, try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
STORAGE_FULL = "452 4.3.1 Insufficient system storage, try again later"
MALFORMED = "554 5.6.0 Message is malformed: {what}"

# Refusals by reason code (Finding.reason). Unlisted reasons use the stage's default.
_REFUSALS: dict[str, str] = {
    "virus-found": "554 5.7.1 Message refused: virus detected ({detail})",
    "classified-content": (
        "554 5.7.1 Message refused: classified content (Mật/Tối mật/Tuyệt mật) "
        "must not be sent over this system"
    ),
    "spam-score": "554 5.7.1 Message refused as spam",
    "gtube": "554 5.7.1 Message refused as spam",
    "mime-depth-exceeded": "554 5.6.0 Message refused: MIME nesting too deep",
    "mime-parts-exceeded": "554 5.6.0 Message refused: too many MIME parts",
    "header-too-large": "554 5.6.0 Message refused: header section too large",
    "decoded-size-exceeded": "552 5.3.4 Message refused: decoded part too large",
    "archive-bomb": "554 5.7.1 Message refused: archive expands too much (possible zip bomb)",
    "archive-nesting-exceeded": "554 5.7.1 Message refused: archives nested too deeply",
    "signature-invalid": "554 5.7.1 Message refused: document signature is not valid",
    "signer-mismatch": (
        "554 5.7.1 Message refused: signing organisation does not match the sender's agency"
    ),
    "unsigned": "554 5.7.1 Message refused: official documents must be digitally signed",
    "scan-size-exceeded": "552 5.3.4 Message refused: too large to scan for viruses",
    "scan-limits-exceeded": "554 5.7.1 Message refused: content could not be scanned completely",
    "header-line-too-long": "554 5.6.0 Message refused: header line too long",
    "header-fields-exceeded": "554 5.6.0 Message refused: too many header fields",
    "header-name-whitespace": (
        "554 5.6.0 Message refused: white space between a header field name and its colon"
    ),
    "header-field-malformed": "554 5.6.0 Message refused: a header line is not a header field",
    "header-control-character": (
        "554 5.6.0 Message refused: control character in the header section"
    ),
    "from-count": "554 5.6.0 Message refused: exactly one From: field is required",
    "from-mailbox-count": "554 5.6.0 Message refused: From: must name exactly one mailbox",
    "originator-repeated": "554 5.6.0 Message refused: Sender: or Reply-To: appears twice",
    "address-header-too-large": "554 5.6.0 Message refused: address header field too large",
    "address-header-unparsable": (
        "554 5.6.0 Message refused: address header field cannot be parsed"
    ),
    "mime-fragment": (
        "554 5.7.1 Message refused: a message sent in fragments (message/partial) or by "
        "reference (message/external-body) cannot be checked"
    ),
    "archive-entries-exceeded": "554 5.7.1 Message refused: archive has too many entries",
    "archive-nested-too-large": "554 5.7.1 Message refused: nested archive too large",
    "archive-unreadable": "554 5.6.0 Message refused: archive cannot be read",
    "archive-encrypted": "554 5.7.1 Message refused: encrypted archive cannot be scanned",
    "unreadable-content": (
        "554 5.7.1 Message refused: an attachment cannot be read (damaged, encrypted or "
        "too large to inspect)"
    ),
    "file-name-deceptive": (
        "554 5.7.1 Message refused: an attachment's file name has hidden, control or "
        "direction-changing characters"
    ),
    "signature-indeterminate": (
        "554 5.7.1 Message refused: document signature could not be validated"
    ),
    "organisation-signature-missing": (
        "554 5.7.1 Message refused: the organisation's signature is missing"
    ),
}
_STAGE_DEFAULT: dict[str, str] = {
    "antivirus": "554 5.7.1 Message refused: virus detected",
    "limits": "554 5.6.0 Message refused: structure exceeds limits",
    "classification": _REFUSALS["classified-content"],
    "signatures": _REFUSALS["signature-invalid"],
    "spam": _REFUSALS["spam-score"],
}
_GENERIC_REFUSAL = "554 5.7.1 Message refused by policy ({reason})"
# Origin (DKIM/SPF/DMARC) failures: RFC 7372's 5.7.26 "multiple authentication checks failed".
_ORIGIN_REFUSAL = "550 5.7.26 sender not authenticated for {domain}: {detail}"
_ORIGIN_STAGE = "authentication"


_DEFERRED = {
    DeferReason.CHECKS: TEMPFAIL,
    DeferReason.DELIVERY: DELIVERY_TEMPFAIL,
    DeferReason.STORAGE_FULL: STORAGE_FULL,
    DeferReason.INTERNAL: INTERNAL_ERROR,
}


def for_outcome(outcome: Outcome) -> str:
    """The DATA reply for what became of a message (mailsvc.outcome)."""
    if isinstance(outcome, Accepted):
        template = OK_DUPLICATE if outcome.duplicate else OK_QUEUED
        return template.format(queue_id=outcome.queue_id)
    if isinstance(outcome, Deferred):
        return _DEFERRED[outcome.reason]
    assert isinstance(outcome, Refused)
    return for_verdict(outcome.verdict)


def for_reason(reason: str) -> str:
    """The refusal for a reason code given before the pipeline runs (submission)."""
    return _REFUSALS.get(reason) or _GENERIC_REFUSAL.format(reason=reason)


def for_verdict(verdict: Verdict) -> str:
    """The DATA reply for a refusing or deferring verdict."""
    if verdict.action is Action.TEMPFAIL:
        return TEMPFAIL
    finding = verdict.deciding
    if finding is None:
        return _GENERIC_REFUSAL.format(reason="unspecified")
    if finding.stage == _ORIGIN_STAGE:
        domain = _origin_domain(finding) or "unknown"
        return _one_line(_ORIGIN_REFUSAL.format(domain=domain, detail=finding.detail))
    if finding.reason == "unreadable-content" and isinstance(finding.payload, ClassificationResult):
        return _unreadable(finding.payload)
    template = _REFUSALS.get(finding.reason) or _STAGE_DEFAULT.get(finding.stage)
    if template is None:
        return _GENERIC_REFUSAL.format(reason=finding.reason)
    scan = finding.payload
    signature = scan.signature if isinstance(scan, ScanResult) else ""
    return template.format(detail=_one_line(signature or "unknown"))


# Why a part could not be read, as the sender can act on it (send it unencrypted, send
# it again undamaged, smaller, or a clearer scan).
_UNREADABLE_WHY = {
    "encrypted": "it is encrypted (nothing here holds its key or password)",
    "corrupt": "it is damaged",
    "too-large": "it is too large to inspect",
    "illegible": "it is a scan with no legible text",
    "unsupported": "its type cannot be read",
}


def _unreadable(result: ClassificationResult) -> str:
    """The refusal for parts that could not be read: which part and why, when one kind."""
    kinds = result.kinds
    where = result.unreadable[0].location if len(result.unreadable) == 1 else ""
    part = f"an attachment ({where})" if where else "an attachment"
    if len(kinds) == 1 and kinds[0] in _UNREADABLE_WHY:
        line = f"554 5.7.1 Message refused: {part} cannot be read: {_UNREADABLE_WHY[kinds[0]]}"
    else:
        line = _REFUSALS["unreadable-content"]
    return _one_line(line)


def _origin_domain(finding: Finding) -> str:
    """The domain an origin refusal speaks for: DMARC's From domain, SPF's checked domain
    (a DKIM failure names none: d= may be anyone's)."""
    payload = finding.payload
    if isinstance(payload, DmarcOutcome):
        return payload.from_domain
    if isinstance(payload, SpfOutcome):
        return payload.domain
    return ""


def _one_line(text: str) -> str:
    """A reply line holds printable ASCII only (the detail may quote a hostile header)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:400]
