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
(canonicalisation, hashing, RSA) runs in the executor. SPF is a small RFC 7208
implementation on the same resolver (see ``check_spf`` for why not pyspf).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum

import dkim

from mailsvc.adapters.dns import OriginResolver
from mailsvc.errors import DependencyError
from mailsvc.interfaces import Directory
from mailsvc.message import Direction, InboundMessage
from mailsvc.policy.authentication import AuthenticationPolicy
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)
_dkimpy_log = logging.getLogger(__name__ + ".dkimpy")

STAGE_NAME = "authentication"

# Multi-label public suffixes for the organisational domain (RFC 7489 3.2). A small
# built-in list (Viet Nam and the suffixes most often seen in mail); more can be added
# in policies/authentication.yaml (public_suffixes). Single-label TLDs need no entry.
BUILTIN_PUBLIC_SUFFIXES = frozenset(
    {
        # Viet Nam (VNNIC second-level domains)
        "com.vn", "net.vn", "org.vn", "edu.vn", "gov.vn", "ac.vn", "biz.vn", "info.vn",
        "int.vn", "name.vn", "pro.vn", "health.vn",
        # frequent elsewhere
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au",
        "edu.au", "gov.au", "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "com.cn",
        "net.cn", "org.cn", "gov.cn", "edu.cn", "com.tw", "com.hk", "com.sg", "gov.sg",
        "com.my", "co.th", "go.th", "co.kr", "or.kr", "co.in", "gov.in", "co.nz",
        "com.br", "com.mx", "co.id", "go.id", "com.ph", "gov.ph", "com.kh", "com.la",
    }
)  # fmt: skip


def organisational_domain(domain: str, extra_suffixes: Iterable[str] = ()) -> str:
    """The registrable domain: the longest known public suffix plus one label."""
    labels = domain.strip().rstrip(".").lower().split(".")
    suffixes = BUILTIN_PUBLIC_SUFFIXES | {s.strip(".").lower() for s in extra_suffixes}
    for size in range(len(labels) - 1, 0, -1):
        if ".".join(labels[-size:]) in suffixes:
            return ".".join(labels[-(size + 1) :])
    return ".".join(labels[-2:])


def _aligned(a: str, b: str, mode: str, suffixes: Iterable[str]) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organisational_domain(a, suffixes) == organisational_domain(b, suffixes)


def _ar_value(value: str) -> str:
    """An Authentication-Results property value: a token, or a quoted string."""
    if value and re.fullmatch(r"[A-Za-z0-9.@_+\-=/]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    cleaned = text.replace("(", "[").replace(")", "]").replace("\\", "/")
    return "(" + re.sub(r"\s+", " ", cleaned)[:120] + ")"


# ---------------------------------------------------------------------------------------
# DKIM
# ---------------------------------------------------------------------------------------


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
            parts.append(_comment(self.detail))
        elif self.unsigned_body_bytes:
            parts.append(_comment(f"{self.unsigned_body_bytes} body bytes not signed"))
        if self.domain:
            parts.append(f"header.d={_ar_value(self.domain)}")
        if self.selector:
            parts.append(f"header.s={_ar_value(self.selector)}")
        if self.b_prefix:
            parts.append(f"header.b={_ar_value(self.b_prefix)}")
        return " ".join(parts)


@dataclass(frozen=True)
class _SignatureHeader:
    index: int
    domain: str
    selector: str
    b_prefix: str
    body_length: int | None
    canonicalization: bytes
    error: str  # non-empty: the tag list itself is unusable (permerror)


def _parse_signatures(raw: bytes, limit: int) -> list[_SignatureHeader]:
    """Parse the DKIM-Signature tag lists (CPU; run in the executor)."""
    checker = dkim.DKIM(raw, logger=_dkimpy_log)
    values = [v for name, v in checker.headers if name.lower() == b"dkim-signature"]
    found: list[_SignatureHeader] = []
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
            _SignatureHeader(
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


def _verify_signatures(
    raw: bytes, work: list[tuple[_SignatureHeader, bytes]], min_key_bits: int
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
# Why our own: pyspf, the maintained library, resolves through a module-global, blocking
# DNS function (spf.DNSLookup), so it can neither use the injected resolver (pinned data,
# the loopback test server, closed networks) nor run on the event loop without a thread
# per lookup. The algorithm is small: mechanisms all ip4 ip6 a mx ptr include exists,
# the redirect modifier (exp= is parsed and ignored: explanations are shown to nobody),
# macros (section 7) and the limits of section 4.6.4 (10 DNS-querying terms, 2 void
# lookups, 10 names per mx/ptr).
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


_QUALIFIERS = {
    "+": SpfResult.PASS,
    "-": SpfResult.FAIL,
    "~": SpfResult.SOFTFAIL,
    "?": SpfResult.NEUTRAL,
}
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_MACRO = re.compile(r"%(?:\{([a-zA-Z])(\d*)(r?)([.\-+,/_=]*)\}|(.)|$)", re.IGNORECASE)
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$", re.IGNORECASE)


class _PermError(Exception):
    """Internal: ends evaluation with permerror (never leaves this module)."""


class _TempError(Exception):
    """Internal: ends evaluation with temperror (never leaves this module)."""


@dataclass(frozen=True)
class SpfOutcome:
    result: SpfResult
    domain: str  # the domain whose record was checked first
    identity: str  # "mailfrom" or "helo"
    detail: str
    lookups: int = 0


def is_valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    return len(labels) >= 2 and all(_DOMAIN_LABEL.match(label) for label in labels)


class _Evaluation:
    def __init__(
        self,
        resolver: OriginResolver,
        ip: IPAddress,
        sender: str,
        helo: str,
        lookup_limit: int,
        void_limit: int,
        mx_limit: int,
    ) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.lookup_limit = lookup_limit
        self.void_limit = void_limit
        self.mx_limit = mx_limit
        self.lookups = 0
        self.voids = 0
        self.trail: list[str] = []

    # -- limits ------------------------------------------------------------------------
    def count_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > self.lookup_limit:
            raise _PermError(f"more than {self.lookup_limit} DNS-querying terms")

    def count_void(self, answer: Sequence[str]) -> None:
        if not answer:
            self.voids += 1
            if self.voids > self.void_limit:
                raise _PermError(f"more than {self.void_limit} void lookups")

    async def lookup(self, kind: str, name: str) -> Sequence[str]:
        try:
            result: Sequence[str] = await getattr(self.resolver, kind)(name)
        except DependencyError as exc:
            raise _TempError(str(exc)) from exc
        return result

    async def addresses(self, name: str) -> Sequence[str]:
        return await self.lookup("a" if self.ip.version == 4 else "aaaa", name)

    # -- macros (RFC 7208 section 7) ---------------------------------------------------
    def expand(self, spec: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if self.ip.version == 4:
            ip_text = str(self.ip)
        else:
            ip_text = ".".join(self.ip.exploded.replace(":", ""))
        values = {
            "s": self.sender,
            "l": local or "postmaster",
            "o": sender_domain,
            "d": domain,
            "i": ip_text,
            "p": "unknown",
            "v": "in-addr" if self.ip.version == 4 else "ip6",
            "h": self.helo,
        }
        out: list[str] = []
        pos = 0
        for match in _MACRO.finditer(spec):
            out.append(spec[pos : match.start()])
            pos = match.end()
            letter, digits, reverse, delimiters, escape = match.groups()
            if letter is None:
                if escape == "%":
                    out.append("%")
                elif escape == "_":
                    out.append(" ")
                elif escape == "-":
                    out.append("%20")
                else:
                    raise _PermError(f"bad macro in {spec!r}")
                continue
            key = letter.lower()
            if key not in values:
                raise _PermError(f"macro %{{{letter}}} not allowed here")
            parts = re.split("[" + re.escape(delimiters or ".") + "]", values[key])
            if reverse:
                parts.reverse()
            if digits:
                count = int(digits)
                if count == 0:
                    raise _PermError("macro with zero labels")
                parts = parts[-count:]
            value = ".".join(parts)
            if letter.isupper():
                value = urllib.parse.quote(value, safe="")
            out.append(value)
        out.append(spec[pos:])
        expanded = "".join(out)
        while len(expanded) > 253 and "." in expanded:
            expanded = expanded.partition(".")[2]
        return expanded

    def target(self, argument: str | None, domain: str) -> str:
        if not argument:
            return domain
        target = self.expand(argument, domain).rstrip(".").lower()
        if not is_valid_domain(target):
            raise _PermError(f"invalid domain-spec {argument!r}")
        return target

    # -- check_host() ------------------------------------------------------------------
    async def check_host(self, domain: str, depth: int = 0) -> SpfResult:
        if depth > 20:
            raise _PermError("include/redirect loop")
        if not is_valid_domain(domain):
            return SpfResult.NONE
        records = [
            r for r in await self.lookup("txt", domain) if re.match(r"v=spf1(\s|$)", r, re.I)
        ]
        if not records:
            return SpfResult.NONE
        if len(records) > 1:
            raise _PermError(f"{domain}: more than one SPF record")
        self.trail.append(domain)
        terms = records[0].split()[1:]
        redirect: str | None = None
        seen_modifiers: set[str] = set()
        directives: list[tuple[SpfResult, str, str | None, str]] = []
        for term in terms:
            modifier = re.match(r"^([a-z][a-z0-9_.-]*)=(.*)$", term, re.I)
            if modifier:
                name = modifier.group(1).lower()
                if name in ("redirect", "exp"):
                    if name in seen_modifiers:
                        raise _PermError(f"{domain}: duplicate {name}=")
                    seen_modifiers.add(name)
                    if name == "redirect":
                        redirect = modifier.group(2)
                continue
            qualifier = SpfResult.PASS
            if term[0] in _QUALIFIERS:
                qualifier = _QUALIFIERS[term[0]]
                term = term[1:]
            match = re.match(r"^([a-z0-9]+)(?::([^/]*))?((?:/\d*)?(?://\d*)?)$", term, re.I)
            mechanism = match.group(1).lower() if match else ""
            if not match or mechanism not in _MECHANISMS:
                raise _PermError(f"{domain}: unknown term {term!r}")
            directives.append((qualifier, mechanism, match.group(2), match.group(3) or ""))
        for qualifier, mechanism, argument, cidr in directives:
            if await self.matches(mechanism, argument, cidr, domain, depth):
                return qualifier
        if redirect is not None:
            self.count_lookup()
            target = self.target(redirect, domain)
            result = await self.check_host(target, depth + 1)
            if result is SpfResult.NONE:
                raise _PermError(f"redirect to {target} without SPF record")
            return result
        return SpfResult.NEUTRAL

    @staticmethod
    def _cidr(cidr: str) -> tuple[int, int]:
        v4, v6 = 32, 128
        match = re.match(r"^(?:/(\d+))?(?://(\d+))?$", cidr)
        if not match:
            raise _PermError(f"bad CIDR length {cidr!r}")
        if match.group(1) is not None:
            v4 = int(match.group(1))
        if match.group(2) is not None:
            v6 = int(match.group(2))
        if v4 > 32 or v6 > 128:
            raise _PermError(f"bad CIDR length {cidr!r}")
        return v4, v6

    def _in(self, address: str, v4: int, v6: int) -> bool:
        try:
            candidate = ipaddress.ip_address(address)
        except ValueError:
            return False
        if candidate.version != self.ip.version:
            return False
        prefix = v4 if candidate.version == 4 else v6
        return self.ip in ipaddress.ip_network(f"{candidate}/{prefix}", strict=False)

    async def matches(
        self, mechanism: str, argument: str | None, cidr: str, domain: str, depth: int
    ) -> bool:
        if mechanism == "all":
            return True
        if mechanism in ("ip4", "ip6"):
            if not argument:
                raise _PermError(f"{mechanism} without address")
            try:
                network = ipaddress.ip_network(argument + (cidr or ""), strict=False)
            except ValueError as exc:
                raise _PermError(f"bad {mechanism}:{argument}{cidr}") from exc
            if (mechanism == "ip4") != (network.version == 4):
                raise _PermError(f"{mechanism} with wrong address family")
            return network.version == self.ip.version and self.ip in network
        if mechanism == "include":
            if not argument:
                raise _PermError("include without domain")
            self.count_lookup()
            result = await self.check_host(self.target(argument, domain), depth + 1)
            if result is SpfResult.PASS:
                return True
            if result is SpfResult.TEMPERROR:
                raise _TempError("include: temperror")
            if result in (SpfResult.PERMERROR, SpfResult.NONE):
                raise _PermError(f"include:{argument} gave {result.value}")
            return False
        if mechanism == "a":
            self.count_lookup()
            v4, v6 = self._cidr(cidr)
            answer = await self.addresses(self.target(argument, domain))
            self.count_void(answer)
            return any(self._in(a, v4, v6) for a in answer)
        if mechanism == "mx":
            self.count_lookup()
            v4, v6 = self._cidr(cidr)
            hosts = await self.lookup("mx", self.target(argument, domain))
            self.count_void(hosts)
            if len(hosts) > self.mx_limit:
                raise _PermError(f"more than {self.mx_limit} MX names")
            for host in hosts:
                if any(self._in(a, v4, v6) for a in await self.addresses(host)):
                    return True
            return False
        if mechanism == "exists":
            if not argument:
                raise _PermError("exists without domain")
            self.count_lookup()
            answer = await self.lookup("a", self.target(argument, domain))
            self.count_void(answer)
            return bool(answer)
        if mechanism == "ptr":
            self.count_lookup()
            target = self.target(argument, domain)
            try:
                names = list(await self.resolver.ptr(str(self.ip)))[: self.mx_limit]
            except DependencyError:
                return False  # RFC 7208 5.5: lookup errors in ptr mean no match
            for name in names:
                try:
                    if str(self.ip) not in {
                        str(ipaddress.ip_address(a)) for a in await self.addresses(name)
                    }:
                        continue
                except DependencyError:
                    continue
                if name == target or name.endswith("." + target):
                    return True
            return False
        raise _PermError(f"unknown mechanism {mechanism}")  # unreachable: checked on parse


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
    """check_host() for the MAIL FROM identity (or the HELO identity for a null sender)."""
    try:
        ip: IPAddress = ipaddress.ip_address(client_ip)
    except ValueError:
        return SpfOutcome(SpfResult.NONE, "", "mailfrom", f"no usable client IP {client_ip!r}")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    helo = helo.strip().rstrip(".").lower()
    if mail_from:
        identity = "mailfrom"
        local, _, domain = mail_from.rpartition("@")
        sender = f"{local or 'postmaster'}@{domain.lower()}"
    else:
        identity = "helo"
        domain = helo
        sender = f"postmaster@{helo}"
    domain = domain.rstrip(".").lower()
    evaluation = _Evaluation(resolver, ip, sender, helo, lookup_limit, void_limit, mx_limit)
    try:
        result = await evaluation.check_host(domain)
        detail = f"{domain}: {result.value} for {ip}"
    except _PermError as exc:
        result, detail = SpfResult.PERMERROR, str(exc)
    except _TempError as exc:
        result, detail = SpfResult.TEMPERROR, str(exc)
    return SpfOutcome(result, domain, identity, detail, evaluation.lookups)


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
            headers = await loop.run_in_executor(self._executor, _parse_signatures, msg.raw, limit)
        except dkim.DKIMException as exc:
            return self._dkim_finding((), f"message could not be parsed for DKIM: {exc}")
        if not headers:
            return self._dkim_finding((), "no DKIM-Signature")

        async def fetch(sig: _SignatureHeader) -> DkimSignatureResult | bytes:
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
                self._executor, _verify_signatures, msg.raw, work, self._policy.dkim.min_key_bits
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
        passing = [r for r in results if r.result == "pass"]
        evidence = {
            "signatures": len(results),
            "domains": ",".join(sorted({r.domain for r in results if r.domain})),
        }
        if passing:
            evidence["pass_domains"] = ",".join(sorted({r.domain for r in passing}))
        partial = sum(r.unsigned_body_bytes for r in passing)
        if partial:
            evidence["unsigned_body_bytes"] = partial
        finding = Finding(
            stage=self.name,
            status=status,
            reason=reason,
            detail=summary,
            auth_result="; ".join(r.entry() for r in results),
            payload=results,
            evidence=evidence,
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
                msg.mail_from,
                msg.client_helo,
                lookup_limit=policy.lookup_limit,
                void_limit=policy.void_lookup_limit,
                mx_limit=policy.mx_limit,
            )
        return self._spf_finding(outcome, msg), outcome

    def _pinned_spf(self, msg: InboundMessage) -> SpfOutcome | None:
        """The directory's allowed sending addresses decide, when it pins any for the domain."""
        domain = (msg.sender_domain if msg.mail_from else msg.client_helo).rstrip(".").lower()
        identity = "mailfrom" if msg.mail_from else "helo"
        agency = self._directory.agency_for_domain(domain) if domain else None
        if agency is None or not agency.allowed_senders:
            return None
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
                    SpfResult.PASS, domain, identity, f"{ip} pinned for {agency.code} ({network})"
                )
        return SpfOutcome(
            SpfResult.FAIL, domain, identity, f"{ip} not among {agency.code}'s pinned senders"
        )

    def _spf_finding(self, outcome: SpfOutcome, msg: InboundMessage) -> Finding:
        if outcome.identity == "helo":
            prop = f"smtp.helo={_ar_value(outcome.domain or msg.client_helo or 'unknown')}"
        else:
            prop = f"smtp.mailfrom={_ar_value(msg.mail_from or 'unknown')}"
        comment = _comment(outcome.detail) + " " if outcome.detail else ""
        return Finding(
            stage=self.name,
            status=_SPF_STATUS[outcome.result],
            reason=f"spf-{outcome.result.value}",
            detail=outcome.detail,
            auth_result=f"spf={outcome.result.value} {comment}{prop}",
            payload=outcome,
            evidence={
                "domain": outcome.domain,
                "client_ip": msg.client_ip,
                "lookups": outcome.lookups,
            },
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
            self._directory.agency_for_domain(from_domain) is not None
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
                entry += f" header.from={_ar_value(domain)}"
            return Finding(
                stage=self.name,
                status=status,
                reason=reason,
                detail=detail,
                auth_result=entry,
                evidence={"from_domain": domain},
            )

        if not self._policy.dmarc.enabled:
            return finding(Status.NONE, "dmarc-none", "none", "DMARC disabled", "")
        try:
            from_header = msg.headers.get_all("From") or []
            addresses = [a for h in from_header for a in getattr(h, "addresses", ())]
        except (ValueError, IndexError, TypeError):
            addresses = []
        domains = {str(a.domain).lower().rstrip(".") for a in addresses if a.domain}
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
        dkim_aligned = [
            r.domain
            for r in dkim_results
            if r.result == "pass" and _aligned(r.domain, from_domain, record.adkim, suffixes)
        ]
        spf_aligned = (
            spf is not None
            and spf.result is SpfResult.PASS
            and bool(spf.domain)
            and _aligned(spf.domain, from_domain, record.aspf, suffixes)
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
            f"{record.source} record at {record.domain} asks p={applied}",
            from_domain,
            f"(p={applied} dis={applied})",
        )


def format_authentication_results(authserv_id: str, findings: Iterable[Finding]) -> str:
    """The value of an Authentication-Results header field from the stage's findings."""
    entries = [f.auth_result for f in findings if f.stage == STAGE_NAME and f.auth_result]
    return "; ".join([authserv_id, *entries]) if entries else f"{authserv_id}; none"
