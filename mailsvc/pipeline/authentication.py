"""AuthenticationStage: where a message comes from (DKIM, SPF, DMARC), observed, never acted on.

One finding per method, in this order: ``dkim``, ``spf``, ``dmarc``. Each carries an
Authentication-Results method entry (RFC 8601) in ``auth_result``; the DKIM entry holds
one ``dkim=...`` clause per signature, joined by ``"; "``, so the runner can write
``Authentication-Results: <authserv-id>; <entry>; <entry>; <entry>`` directly.

Reason codes (stable; spam scoring and SMTP replies refer to them)::

    dkim-pass dkim-fail dkim-none dkim-temperror dkim-permerror
    spf-pass spf-fail spf-softfail spf-neutral spf-none spf-temperror spf-permerror
    dmarc-pass dmarc-fail dmarc-quarantine dmarc-reject dmarc-none
    dmarc-temperror dmarc-permerror
    authenticated-submission

``dmarc-fail`` means failed with the domain's ``p=none``; ``dmarc-quarantine`` and
``dmarc-reject`` mean failed where the domain asks for that treatment.

DNS goes through the injected resolver, asynchronously, before dkimpy runs: dkimpy is
handed a ``dnsfunc`` that answers from the keys already fetched, and its CPU work
(canonicalisation, hashing, RSA) runs in the executor (mailsvc.pipeline.dkim_verify). SPF
is pyspf's evaluation fed by the same resolver (see ``check_spf``); it passes the openspf
RFC 7208 and RFC 4408 suites, which run in CI (tests/pipeline/test_spf_suite.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dkim
import dns.exception
import dns.name
import dns.reversename
import idna
import spf

from mailsvc.adapters.dns import OriginResolver
from mailsvc.directory import covering_agency, owning_agency
from mailsvc.errors import DependencyError
from mailsvc.interfaces import Directory
from mailsvc.message import Direction, InboundMessage
from mailsvc.pipeline.dkim_verify import (
    DkimSignatureResult,
    SignatureHeader,
    ar_comment,
    ar_value,
    parse_signatures,
    verify_signatures,
)
from mailsvc.pipeline.domains import is_aligned, organisational_domain, public_suffix_list
from mailsvc.policy.authentication import AuthenticationPolicy
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

STAGE_NAME = "authentication"

# ---------------------------------------------------------------------------------------
# DKIM (the CPU work, run in the executor, is in mailsvc.pipeline.dkim_verify)
# ---------------------------------------------------------------------------------------


def _key_record(records: Sequence[str]) -> str | None:
    """The DKIM key record among the TXT records at a selector name."""
    candidates = [r for r in records if re.search(r"(^|;)\s*p\s*=", r)]
    if not candidates:
        return None
    dkim1 = [r for r in candidates if re.match(r"\s*v\s*=\s*DKIM1", r)]
    return (dkim1 or candidates)[0]


# ---------------------------------------------------------------------------------------
# SPF (RFC 7208)
#
# pyspf evaluates; our resolver answers. pyspf (the library the openspf test suites come
# from) passes the RFC 7208 suite 203/203 and the RFC 4408 suite; it is synchronous and
# asks its DNS function one name at a time. We do not give it a thread: _PrefetchedQuery
# overrides query.dns() to answer only from lookups already made through the injected
# (pinned/chained, asynchronous) resolver, and stops with _Unresolved at the first name it
# lacks. check_spf() then fetches that name on the event loop and runs the evaluation
# again; the evaluation is deterministic, so the last run, which needed nothing new, is
# the answer. With each fetch it also fetches, concurrently, the names the new answers
# point at (_follow_ups), so a typical check takes 2-3 runs and its DNS round trips
# overlap. bench/spf_cost.py measures this against pyspf alone and pyspf in threads.
#
# Deviations from pyspf's own DNS handling, all RFC 7208: the limits come from the
# policy; a DNS error on the PTR lookup means "no match" and one on the A lookup of a PTR
# name skips that name (section 5.5); CNAMEs are followed by the resolver.
# ---------------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True)
class SpfOutcome:
    """Typed payload of the SPF finding."""

    result: SpfResult
    domain: str  # the domain whose record was checked first (A-label form)
    identity: str  # "mailfrom" or "helo"
    detail: str
    lookups: int = 0
    explanation: str = ""  # the domain's exp= text, on fail, when it published one

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "domain": self.domain,
            "identity": self.identity,
            "lookups": self.lookups,
        }


@dataclass(frozen=True)
class _SpfLimits:
    lookups: int
    voids: int
    names: int  # MX names per mx, PTR names per ptr / %{p}


_Answer = tuple[Any, ...] | DependencyError
_MAX_ROUNDS = 400  # > every lookup the limits allow: 10 terms x (1 + 10 names) + exp + ptr


class _Unresolved(Exception):
    """Internal: pyspf asked for a lookup not made yet (never leaves this module)."""


class _PrefetchedQuery(spf.query):
    """A pyspf query whose DNS answers come from ``answers``; a missing one is noted."""

    def __init__(
        self,
        answers: dict[tuple[str, str], _Answer],
        missing: list[tuple[str, str]],
        limits: _SpfLimits,
        **query: object,
    ) -> None:
        super().__init__(**query)
        self._answers = answers
        self._missing = missing
        self._limits = limits
        self.set_default_explanation("")

    def dns(
        self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False
    ) -> list[Any]:
        name = str(name).removesuffix(".").lower()
        if not name or not all(0 < len(label) < 64 for label in name.split(".")):
            return []  # a name that cannot exist (pyspf: "invalid DNS name")
        if qtype not in _SPF_FETCH:
            return []  # type SPF (99): only pyspf's harsh mode asks, we do not use it
        key = (name, qtype)
        if key not in self._answers:
            if key not in self._missing:
                self._missing.append(key)
            raise _Unresolved(f"{qtype} {name}")
        answer = self._answers[key]
        if isinstance(answer, DependencyError):
            raise spf.TempError(str(answer))
        if not answer and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > self._limits.voids:
                raise spf.PermError(f"more than {self._limits.voids} void lookups")
        return list(answer)

    def check_lookups(self) -> None:
        self.lookups += 1
        if self.lookups > self._limits.lookups:
            raise spf.PermError(f"more than {self._limits.lookups} DNS-querying terms")

    def dns_mx(self, domainname: str) -> list[object]:
        names = self.dns(domainname, "MX")
        if len(names) > self._limits.names:
            raise spf.PermError(f"more than {self._limits.names} MX names for {domainname}")
        return [a for _, host in names for a in self.dns_a(host, self.A)]

    def validated_ptrs(self) -> list[str]:
        try:
            names = self.dns_ptr(self.i)
        except spf.TempError:
            return []  # RFC 7208 5.5: a DNS error on the PTR lookup: no match
        validated = []
        for name in names[: self._limits.names]:
            try:
                addresses = self.dns_a(name, self.A)
            except spf.TempError:
                continue  # RFC 7208 5.5: a DNS error on one name's A lookup skips it
            if self.cidrmatch(addresses, self.cidrmax):
                validated.append(name)
        return validated


async def _fetch_spf(resolver: OriginResolver, name: str, qtype: str) -> _Answer:
    """One lookup for pyspf, in the shape its DNS function returns."""
    try:
        if qtype == "TXT":
            return tuple((r.encode("utf-8"),) for r in await resolver.txt(name))
        if qtype == "A":
            return tuple(await resolver.a(name))
        if qtype == "AAAA":
            return tuple(await resolver.aaaa(name))
        if qtype == "MX":
            return tuple(enumerate(await resolver.mx(name)))  # (preference order, host)
        address = dns.reversename.to_address(dns.name.from_text(name))
        return tuple(await resolver.ptr(address))
    except DependencyError as exc:
        return exc
    except (dns.exception.SyntaxError, ValueError):
        return ()  # a reverse name that is no address (pyspf never builds one)


_SPF_FETCH = ("TXT", "A", "AAAA", "MX", "PTR")
_PREFETCH_LIMIT = 30  # lookups made ahead of pyspf per check (bounds the extra traffic)
_SPF_TERM = re.compile(r"^[+?~-]?(include|a|mx|exists|redirect)(?:[:=]([^/]*))?(/.*)?$", re.I)


def _follow_ups(key: tuple[str, str], answer: _Answer, address_type: str) -> list[tuple[str, str]]:
    """Lookups pyspf will probably ask for next, from one answer (macro-free names only).

    From an SPF record: its include/redirect records, a/exists addresses and mx names;
    from MX names: their addresses. pyspf still asks for each one it needs, in order, and
    counts the limits; fetching ahead only saves event-loop rounds and DNS round trips
    (they run concurrently), at the price of lookups an early match makes unnecessary.
    """
    name, qtype = key
    if isinstance(answer, DependencyError):
        return []
    if qtype == "MX":
        return [(str(host), address_type) for _, host in answer]
    if qtype != "TXT":
        return []
    records = [r[0].decode("utf-8", "replace") for r in answer]
    spf_records = [r for r in records if re.match(r"v=spf1( |$)", r, re.I)]
    if len(spf_records) != 1:
        return []
    wanted = []
    for term in spf_records[0].split()[1:]:
        match = _SPF_TERM.match(term)
        if match is None or "%" in term:
            continue
        kind, target = match.group(1).lower(), (match.group(2) or name).rstrip(".").lower()
        if not target:
            continue
        qtypes = {"include": "TXT", "redirect": "TXT", "a": address_type, "exists": "A"}
        wanted.append((target, qtypes.get(kind, "MX")))
    return wanted


async def _fetch_ahead(
    resolver: OriginResolver,
    missing: list[tuple[str, str]],
    answers: dict[tuple[str, str], _Answer],
    address_type: str,
    budget: list[int],
) -> None:
    """Fetch what pyspf asked for, then (two hops deep) what it will probably ask next."""
    batch = missing
    for hop in range(3):
        fetched = await asyncio.gather(*(_fetch_spf(resolver, n, t) for n, t in batch))
        answers.update(zip(batch, fetched, strict=True))
        if hop == 2:
            break
        ahead = [
            follow
            for key, answer in zip(batch, fetched, strict=True)
            for follow in _follow_ups(key, answer, address_type)
        ]
        batch = [k for k in dict.fromkeys(ahead) if k not in answers][: budget[0]]
        budget[0] -= len(batch)
        if not batch:
            break


def _a_label(domain: str) -> str:
    """A domain in A-label (ASCII) form for DNS; "" when it is no valid IDN."""
    domain = domain.strip().rstrip(".")
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return ""


def _from_domains(msg: InboundMessage) -> list[str]:
    """The From: field's domains: from the originator fields the SMTP handler parsed
    already (one parse for the limits, the spam rules and DMARC); from the email
    package's reading only for a message whose originator fields were not parsed or
    cannot be read (which the limits stage refuses)."""
    originator = msg.originator_if_parsed
    if originator is not None and originator.problem is None:
        return [m.domain for m in originator.from_]
    try:
        from_header = msg.headers.get_all("From") or []
        return [str(a.domain) for h in from_header for a in getattr(h, "addresses", ())]
    except (ValueError, IndexError, TypeError):
        return []


def _from_domain(domain: str) -> str:
    """A From header's domain in A-label form (raw UTF-8 headers arrive surrogate-escaped)."""
    try:
        domain = domain.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return domain.lower()
    return _a_label(domain) or domain.lower()


async def check_spf(
    resolver: OriginResolver,
    client_ip: str,
    mail_from: str,
    helo: str,
    *,
    lookup_limit: int = 10,
    void_limit: int = 2,
    mx_limit: int = 10,
) -> SpfOutcome:
    """check_host() for the MAIL FROM identity (or the HELO identity for a null sender).

    ``mail_from`` is used as sent (the local part keeps its case for macros); IDN
    domains are checked in their A-label form.
    """
    try:
        ip: IPAddress = ipaddress.ip_address(client_ip)
    except ValueError:
        return SpfOutcome(SpfResult.NONE, "", "mailfrom", f"no usable client IP {client_ip!r}")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    helo_name = _a_label(helo) or helo.strip().rstrip(".").lower()
    identity = "mailfrom" if mail_from else "helo"
    sender = ""
    if mail_from:
        local, _, raw_domain = mail_from.rpartition("@")
        domain = _a_label(raw_domain)
        if not domain:
            detail = f"sender domain {raw_domain!r} is not a valid domain name"
            return SpfOutcome(SpfResult.NONE, raw_domain.lower(), identity, detail)
        sender = f"{local}@{domain}" if local else domain
    else:
        domain = helo_name
    limits = _SpfLimits(lookup_limit, void_limit, mx_limit)
    answers: dict[tuple[str, str], _Answer] = {}
    address_type = "A" if ip.version == 4 else "AAAA"
    budget = [_PREFETCH_LIMIT]
    for _round in range(_MAX_ROUNDS):
        missing: list[tuple[str, str]] = []
        query = _PrefetchedQuery(answers, missing, limits, i=str(ip), s=sender, h=helo_name)
        try:
            result, _code, text = query.check()
        except _Unresolved:
            result, text = "", ""
        except Exception as exc:  # boundary: pyspf on hostile records must not crash the stage
            if not missing:  # (with lookups missing, the run on complete data decides)
                log.error("SPF evaluation for %s failed", domain, exc_info=True)
                detail = f"{domain}: unevaluable SPF ({type(exc).__name__})"
                return SpfOutcome(SpfResult.PERMERROR, domain, identity, detail, query.lookups)
            result, text = "", ""
        if not missing:
            break
        await _fetch_ahead(resolver, missing, answers, address_type, budget)
    else:  # unreachable within the limits; a safety net, not a result
        return SpfOutcome(SpfResult.TEMPERROR, domain, identity, "SPF evaluation did not end")
    outcome = SpfResult(result)
    explanation = text if outcome is SpfResult.FAIL else ""
    if outcome in (SpfResult.PERMERROR, SpfResult.TEMPERROR):
        detail = f"{domain}: {getattr(query, 'prob', '') or text}"
    else:
        detail = f"{domain}: {result} for {ip}" + (f": {explanation}" if explanation else "")
    return SpfOutcome(outcome, domain, identity, detail, query.lookups, explanation)


# ---------------------------------------------------------------------------------------
# DMARC (RFC 7489)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where the record was found (or the agency domain for the directory)
    policy: str  # none | quarantine | reject
    subdomain_policy: str | None
    adkim: str  # r | s
    aspf: str  # r | s
    source: str  # "dns" or "directory"


def parse_dmarc_record(text: str, domain: str) -> DmarcRecord | None:
    """Parse one ``v=DMARC1`` record; None when it is not a usable record."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    if tags.get("v") != "DMARC1":
        return None
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        if "rua" not in tags:
            return None
        policy = "none"  # RFC 7489 6.6.3: invalid p= with a valid rua= means none
    sub = tags.get("sp", "").lower()
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return DmarcRecord(
        domain=domain,
        policy=policy,
        subdomain_policy=sub if sub in ("none", "quarantine", "reject") else None,
        adkim=adkim if adkim in ("r", "s") else "r",
        aspf=aspf if aspf in ("r", "s") else "r",
        source="dns",
    )


# ---------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------

_SPF_STATUS = {
    SpfResult.PASS: Status.PASS,
    SpfResult.FAIL: Status.FAIL,
    SpfResult.SOFTFAIL: Status.FAIL,
    SpfResult.NEUTRAL: Status.NONE,
    SpfResult.NONE: Status.NONE,
    SpfResult.TEMPERROR: Status.ERROR,
    SpfResult.PERMERROR: Status.FAIL,
}


@dataclass(frozen=True)
class _DkimOutcome:
    finding: Finding
    results: tuple[DkimSignatureResult, ...]


@dataclass(frozen=True)
class DkimResults:
    """Typed payload of the DKIM finding: each DKIM-Signature's outcome, in header order."""

    signatures: tuple[DkimSignatureResult, ...]

    @property
    def domains(self) -> list[str]:
        """The signing domains (d=), sorted, without repeats."""
        return sorted({r.domain for r in self.signatures if r.domain})

    @property
    def pass_domains(self) -> list[str]:
        return sorted({r.domain for r in self.signatures if r.result == "pass"})

    @property
    def unsigned_body_bytes(self) -> int:
        """Body bytes after l= that passing signatures do not cover."""
        return sum(r.unsigned_body_bytes for r in self.signatures if r.result == "pass")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "signatures": len(self.signatures),
            "domains": ",".join(self.domains),
        }
        if self.pass_domains:
            out["pass_domains"] = ",".join(self.pass_domains)
        if self.unsigned_body_bytes:
            out["unsigned_body_bytes"] = self.unsigned_body_bytes
        return out


@dataclass(frozen=True)
class DmarcOutcome:
    """Typed payload of the DMARC finding: the From domain it judged ("" when none)."""

    result: str  # pass | fail | none | temperror | permerror
    from_domain: str

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "from_domain": self.from_domain}


class AuthenticationStage:
    """DKIM, SPF and DMARC for mail from other servers; submissions are not checked."""

    name = STAGE_NAME
    description = "Origin authentication: DKIM signatures, SPF and DMARC alignment"

    def __init__(
        self,
        directory: Directory,
        resolver: OriginResolver,
        policy: AuthenticationPolicy,
        authserv_id: str,
        executor: Executor | None = None,
    ) -> None:
        self._directory = directory
        self._resolver = resolver
        self._policy = policy
        self.authserv_id = authserv_id
        self._executor = executor
        public_suffix_list()  # DMARC's organisational domains

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        if msg.direction is Direction.SUBMISSION:
            return (
                Finding(
                    stage=self.name,
                    status=Status.NONE,
                    reason="authenticated-submission",
                    detail=f"submitted by {msg.authenticated_as or 'an authenticated user'}",
                ),
            )
        dkim_outcome, spf_outcome = await asyncio.gather(self._dkim(msg), self._spf(msg))
        dmarc_finding = await self._dmarc(msg, dkim_outcome.results, spf_outcome[1])
        return dkim_outcome.finding, spf_outcome[0], dmarc_finding

    # -- DKIM --------------------------------------------------------------------------
    async def _dkim(self, msg: InboundMessage) -> _DkimOutcome:
        loop = asyncio.get_running_loop()
        limit = self._policy.dkim.max_signatures
        head = msg.raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in msg.raw else msg.raw
        if b"dkim-signature" not in head.lower():
            return self._dkim_finding((), "no DKIM-Signature")
        try:
            headers = await loop.run_in_executor(self._executor, parse_signatures, msg.raw, limit)
        except dkim.DKIMException as exc:
            return self._dkim_finding((), f"message could not be parsed for DKIM: {exc}")
        if not headers:
            return self._dkim_finding((), "no DKIM-Signature")

        async def fetch(sig: SignatureHeader) -> DkimSignatureResult | bytes:
            def failed(result: str, detail: str) -> DkimSignatureResult:
                return DkimSignatureResult(
                    result, sig.domain, sig.selector, detail, sig.b_prefix, sig.body_length
                )

            if sig.error:
                return failed("permerror", sig.error)
            name = f"{sig.selector}._domainkey.{sig.domain}"
            try:
                records = await self._resolver.txt(name)
            except DependencyError as exc:
                return failed("temperror", f"key lookup: {exc}")
            record = _key_record(records)
            if record is None:
                return failed("permerror", f"no key at {name}")
            return record.encode("utf-8")

        fetched = await asyncio.gather(*(fetch(sig) for sig in headers))
        work = [
            (sig, key) for sig, key in zip(headers, fetched, strict=True) if isinstance(key, bytes)
        ]
        verified = iter(
            await loop.run_in_executor(
                self._executor, verify_signatures, msg.raw, work, self._policy.dkim.min_key_bits
            )
            if work
            else []
        )
        results = tuple(
            item if isinstance(item, DkimSignatureResult) else next(verified) for item in fetched
        )
        return self._dkim_finding(results, "")

    def _dkim_finding(self, results: tuple[DkimSignatureResult, ...], detail: str) -> _DkimOutcome:
        if not results:
            finding = Finding(
                stage=self.name,
                status=Status.NONE,
                reason="dkim-none",
                detail=detail,
                auth_result="dkim=none",
            )
            return _DkimOutcome(finding, ())
        outcomes = {r.result for r in results}
        if "pass" in outcomes:
            status, reason = Status.PASS, "dkim-pass"
        elif "temperror" in outcomes:
            status, reason = Status.ERROR, "dkim-temperror"
        elif "fail" in outcomes:
            status, reason = Status.FAIL, "dkim-fail"
        else:
            status, reason = Status.FAIL, "dkim-permerror"
        summary = "; ".join(
            f"{r.domain or '?'}/{r.selector or '?'}: {r.result}"
            + (f" ({r.detail})" if r.detail else "")
            for r in results
        )
        finding = Finding(
            stage=self.name,
            status=status,
            reason=reason,
            detail=summary,
            auth_result="; ".join(r.entry() for r in results),
            payload=DkimResults(results),
        )
        return _DkimOutcome(finding, results)

    # -- SPF ---------------------------------------------------------------------------
    async def _spf(self, msg: InboundMessage) -> tuple[Finding, SpfOutcome | None]:
        policy = self._policy.spf
        if not policy.enabled:
            return self._spf_finding(
                SpfOutcome(SpfResult.NONE, "", "mailfrom", "SPF disabled"), msg
            ), None
        if not msg.client_ip:
            outcome = SpfOutcome(SpfResult.NONE, "", "mailfrom", "no client address")
            return self._spf_finding(outcome, msg), outcome
        pinned = self._pinned_spf(msg) if policy.pinned_senders else None
        if pinned is not None:
            outcome = pinned
        else:
            outcome = await check_spf(
                self._resolver,
                msg.client_ip,
                msg.mail_from_as_sent or msg.mail_from,
                msg.client_helo,
                lookup_limit=policy.lookup_limit,
                void_limit=policy.void_lookup_limit,
                mx_limit=policy.mx_limit,
            )
        return self._spf_finding(outcome, msg), outcome

    def _pinned_spf(self, msg: InboundMessage) -> SpfOutcome | None:
        """The directory's allowed sending addresses decide, when it pins any for the domain."""
        raw_domain = msg.sender_domain if msg.mail_from else msg.client_helo
        domain = _a_label(raw_domain) or raw_domain.rstrip(".").lower()
        identity = "mailfrom" if msg.mail_from else "helo"
        covering = covering_agency(self._directory, domain) if domain else None
        if covering is None or not covering[0].allowed_senders:
            return None
        agency, agency_domain = covering
        scope = "" if agency_domain == domain else f" (subdomain of {agency_domain})"
        try:
            ip = ipaddress.ip_address(msg.client_ip)
        except ValueError:
            return SpfOutcome(SpfResult.NONE, domain, identity, "no usable client address")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for allowed in agency.allowed_senders:
            try:
                network = ipaddress.ip_network(allowed.strip(), strict=False)
            except ValueError:
                log.warning("agency %s: invalid allowed sender %r ignored", agency.code, allowed)
                continue
            if ip.version == network.version and ip in network:
                return SpfOutcome(
                    SpfResult.PASS,
                    domain,
                    identity,
                    f"{ip} pinned for {agency.code} ({network}){scope}",
                )
        return SpfOutcome(
            SpfResult.FAIL,
            domain,
            identity,
            f"{ip} not among {agency.code}'s pinned senders{scope}",
        )

    def _spf_finding(self, outcome: SpfOutcome, msg: InboundMessage) -> Finding:
        if outcome.identity == "helo":
            prop = f"smtp.helo={ar_value(outcome.domain or msg.client_helo or 'unknown')}"
        else:
            prop = f"smtp.mailfrom={ar_value(msg.mail_from or 'unknown')}"
        comment = ar_comment(outcome.detail) + " " if outcome.detail else ""
        return Finding(
            stage=self.name,
            status=_SPF_STATUS[outcome.result],
            reason=f"spf-{outcome.result.value}",
            detail=outcome.detail,
            auth_result=f"spf={outcome.result.value} {comment}{prop}",
            payload=outcome,
        )

    # -- DMARC -------------------------------------------------------------------------
    async def _find_dmarc(self, from_domain: str) -> DmarcRecord | None:
        """The DMARC record for a From domain (RFC 7489 6.6.3); DependencyError on DNS trouble."""
        org = organisational_domain(from_domain, self._policy.public_suffixes)
        for domain in dict.fromkeys((from_domain, org)):
            records = [
                r
                for r in await self._resolver.txt(f"_dmarc.{domain}")
                if r.strip().startswith("v=DMARC1")
            ]
            if len(records) == 1:
                record = parse_dmarc_record(records[0], domain)
                if record is not None:
                    return record
        implicit = self._policy.dmarc.directory_policy
        if implicit != "none" and (
            covering_agency(self._directory, from_domain) is not None
            or self._directory.agency_for_domain(org) is not None
        ):
            return DmarcRecord(from_domain, implicit, None, "r", "r", "directory")
        return None

    async def _dmarc(
        self,
        msg: InboundMessage,
        dkim_results: Sequence[DkimSignatureResult],
        spf: SpfOutcome | None,
    ) -> Finding:
        def finding(
            status: Status, reason: str, result: str, detail: str, domain: str, extra: str = ""
        ) -> Finding:
            entry = f"dmarc={result}" + (f" {extra}" if extra else "")
            if domain:
                entry += f" header.from={ar_value(domain)}"
            return Finding(
                stage=self.name,
                status=status,
                reason=reason,
                detail=detail,
                auth_result=entry,
                payload=DmarcOutcome(result, domain),
            )

        if not self._policy.dmarc.enabled:
            return finding(Status.NONE, "dmarc-none", "none", "DMARC disabled", "")
        # A-label form, as DKIM d= and the SPF domain are (an IDN From must align with them)
        domains = {_from_domain(d) for d in _from_domains(msg) if d}
        if len(domains) > 1:
            return finding(
                Status.FAIL,
                "dmarc-permerror",
                "permerror",
                "From holds more than one domain: " + ", ".join(sorted(domains)),
                "",
            )
        if not domains:
            return finding(Status.NONE, "dmarc-none", "none", "no From domain", "")
        from_domain = domains.pop()
        try:
            record = await self._find_dmarc(from_domain)
        except DependencyError as exc:
            return finding(Status.ERROR, "dmarc-temperror", "temperror", str(exc), from_domain)
        if record is None:
            return finding(
                Status.NONE, "dmarc-none", "none", f"no DMARC record for {from_domain}", from_domain
            )
        suffixes = self._policy.public_suffixes
        # The directory's agencies are alignment boundaries: a pass aligned by DMARC's rules
        # counts only when its domain and the From: domain belong to the same agency (or
        # both to none). A province's agencies share a parent domain (stp.hanoi.gov.vn,
        # soyte.hanoi.gov.vn): relaxed alignment alone would let each write as the others.
        owner = owning_agency(self._directory, from_domain)
        owner_code = owner.code if owner is not None else None
        crossed: list[str] = []

        def same_owner(domain: str, method: str) -> bool:
            theirs = owning_agency(self._directory, domain)
            if (theirs.code if theirs is not None else None) == owner_code:
                return True
            crossed.append(f"{method} {domain}")
            return False

        # A pass whose l= leaves body bytes unsigned proves nothing about what follows:
        # anyone may append a part to a signed message and replay it.
        partial = [
            f"dkim {r.domain}: {r.unsigned_body_bytes} body bytes after l= not signed"
            for r in dkim_results
            if r.result == "pass" and r.unsigned_body_bytes
        ]
        dkim_aligned = [
            r.domain
            for r in dkim_results
            if r.result == "pass"
            and not r.unsigned_body_bytes
            and is_aligned(r.domain, from_domain, record.adkim, suffixes)
            and same_owner(r.domain, "dkim")
        ]
        spf_aligned = (
            spf is not None
            and spf.result is SpfResult.PASS
            and bool(spf.domain)
            and is_aligned(spf.domain, from_domain, record.aspf, suffixes)
            and same_owner(spf.domain, "spf")
        )
        if dkim_aligned or spf_aligned:
            how = ", ".join(
                ([f"dkim {dkim_aligned[0]}"] if dkim_aligned else [])
                + ([f"spf {spf.domain}"] if spf_aligned and spf else [])
            )
            return finding(
                Status.PASS,
                "dmarc-pass",
                "pass",
                f"aligned: {how} ({record.source} record at {record.domain})",
                from_domain,
                f"(p={record.policy})",
            )
        applied = record.policy
        if record.subdomain_policy and from_domain != record.domain:
            applied = record.subdomain_policy
        reason = {"none": "dmarc-fail", "quarantine": "dmarc-quarantine", "reject": "dmarc-reject"}[
            applied
        ]
        return finding(
            Status.FAIL,
            reason,
            "fail",
            f"no aligned DKIM or SPF pass for {from_domain}; "
            + (
                f"{', '.join(crossed)}: another agency's domain than the From: domain's "
                f"({owner_code or 'none'}); "
                if crossed
                else ""
            )
            + ("; ".join(partial) + "; " if partial else "")
            + f"{record.source} record at {record.domain} asks p={applied}",
            from_domain,
            f"(p={applied} dis={applied})",
        )


def format_authentication_results(authserv_id: str, findings: Iterable[Finding]) -> str:
    """The value of an Authentication-Results header field from the stage's findings."""
    entries = [f.auth_result for f in findings if f.stage == STAGE_NAME and f.auth_result]
    return "; ".join([authserv_id, *entries]) if entries else f"{authserv_id}; none"
