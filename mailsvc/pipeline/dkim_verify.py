"""DKIM's CPU work, run in the worker pool: parse the DKIM-Signature fields, verify them
against keys the authentication stage fetched already.

Its own module so that a worker unpickling these functions imports dkimpy and nothing of
the authentication stage (SPF, DNS resolvers, the directory, the database). Workers
import it on their first DKIM-signed message; it is not preloaded in the fork server.
mailsvc.pipeline.authentication re-exports DkimSignatureResult.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import dkim

from mailsvc.pipeline import dkim_speedups

dkim_speedups.install()  # the message split and the canonicalization's shortcuts
# the logger's name is the authentication stage's, as before this module was split off
_dkimpy_log = logging.getLogger("mailsvc.pipeline.authentication.dkimpy")


def ar_value(value: str) -> str:
    """An Authentication-Results property value: a token, or a quoted string."""
    if value and re.fullmatch(r"[A-Za-z0-9.@_+\-=/]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ar_comment(text: str) -> str:
    cleaned = text.replace("(", "[").replace(")", "]").replace("\\", "/")
    return "(" + re.sub(r"\s+", " ", cleaned)[:120] + ")"


@dataclass(frozen=True)
class DkimSignatureResult:
    """The outcome for one DKIM-Signature header field."""

    result: str  # pass | fail | neutral | temperror | permerror
    domain: str
    selector: str
    detail: str
    b_prefix: str = ""  # first characters of b=, tells signatures apart (RFC 6008)
    body_length: int | None = None  # the l= tag, if present
    unsigned_body_bytes: int = 0  # canonical body bytes after l= (not covered)

    def entry(self) -> str:
        parts = [f"dkim={self.result}"]
        if self.result != "pass" and self.detail:
            parts.append(ar_comment(self.detail))
        elif self.unsigned_body_bytes:
            parts.append(ar_comment(f"{self.unsigned_body_bytes} body bytes not signed"))
        if self.domain:
            parts.append(f"header.d={ar_value(self.domain)}")
        if self.selector:
            parts.append(f"header.s={ar_value(self.selector)}")
        if self.b_prefix:
            parts.append(f"header.b={ar_value(self.b_prefix)}")
        return " ".join(parts)


@dataclass(frozen=True)
class SignatureHeader:
    index: int
    domain: str
    selector: str
    b_prefix: str
    body_length: int | None
    canonicalization: bytes
    error: str  # non-empty: the tag list itself is unusable (permerror)


def parse_signatures(raw: bytes, limit: int) -> list[SignatureHeader]:
    """Parse the DKIM-Signature tag lists (CPU; run in the executor)."""
    checker = dkim.DKIM(raw, logger=_dkimpy_log)
    values = [v for name, v in checker.headers if name.lower() == b"dkim-signature"]
    found: list[SignatureHeader] = []
    for index, raw_value in enumerate(values[:limit]):
        tags = dict(re.findall(rb"([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*([^;]*)", raw_value))
        domain = re.sub(rb"\s+", b"", tags.get(b"d", b"")).decode("ascii", "replace").lower()
        selector = re.sub(rb"\s+", b"", tags.get(b"s", b"")).decode("ascii", "replace")
        b_value = re.sub(rb"\s+", b"", tags.get(b"b", b"")).decode("ascii", "replace")
        length_raw = re.sub(rb"\s+", b"", tags.get(b"l", b""))
        error = ""
        try:
            checker.verify_headerprep(index)
        except dkim.DKIMException as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # boundary: dkimpy on hostile input must not crash the stage
            error = f"unparsable signature ({type(exc).__name__})"
        found.append(
            SignatureHeader(
                index=index,
                domain=domain,
                selector=selector,
                b_prefix=b_value[:8],
                body_length=int(length_raw) if length_raw.isdigit() else None,
                canonicalization=re.sub(rb"\s+", b"", tags.get(b"c", b"simple/simple")),
                error=error,
            )
        )
    return found


def verify_signatures(
    raw: bytes, work: list[tuple[SignatureHeader, bytes]], min_key_bits: int
) -> list[DkimSignatureResult]:
    """Verify signatures whose keys were fetched already (CPU; run in the executor)."""
    results = []
    for sig, key in work:

        def dnsfunc(name: bytes, timeout: float = 5, _key: bytes = key) -> bytes:
            return _key

        checker = dkim.DKIM(raw, logger=_dkimpy_log, minkey=min_key_bits)
        unsigned = 0
        try:
            dkim.evaluate_pk(f"{sig.selector}._domainkey.{sig.domain}".encode(), key)
            if sig.body_length is not None:
                policy = dkim.CanonicalizationPolicy.from_c_value(sig.canonicalization)
                unsigned = max(0, len(policy.canonicalize_body(checker.body)) - sig.body_length)
            ok = checker.verify(idx=sig.index, dnsfunc=dnsfunc)
            result, detail = ("pass", "") if ok else ("fail", "signature did not verify")
        except dkim.KeyFormatError as exc:
            result, detail = "permerror", f"key: {exc}"
        except dkim.DKIMException as exc:
            text = str(exc) or type(exc).__name__
            result, detail = "fail", "body hash mismatch" if "body hash" in text else text
        except Exception as exc:  # boundary: dkimpy on hostile input must not crash the stage
            result, detail = "permerror", f"unverifiable ({type(exc).__name__})"
        results.append(
            DkimSignatureResult(
                result=result,
                domain=sig.domain,
                selector=sig.selector,
                detail=detail,
                b_prefix=sig.b_prefix,
                body_length=sig.body_length,
                unsigned_body_bytes=unsigned if result == "pass" else 0,
            )
        )
    return results
