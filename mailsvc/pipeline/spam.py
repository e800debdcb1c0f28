"""SpamStage: built-in spam rules (policies/spam.yaml). Each hit is one FAIL finding.

The stage only reports which rules matched; it never totals, never looks at other
stages' findings and never decides. The runner sums the scores of all findings
(``SpamPolicy.score_for``) and applies the thresholds (``SpamPolicy.action_for``).

Rules (the finding reason is the rule name): gtube, unknown-sender-domain,
free-mail-sender, bulk-headers, mass-mailer, ip-literal-url, link-text-mismatch,
url-shortener, executable-attachment, double-extension, macro-office, missing-date,
missing-message-id, display-name-spoof, raw-8bit-header, multiple-from.
When nothing matches, one PASS finding ``spam-clean`` says the stage ran.
"""

from __future__ import annotations

import email
import email.policy
import functools
import io
import ipaddress
import logging
import re
import urllib.parse
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from typing import Any

from mailsvc.documents.extract import ExtractionError, MessageView, TextExtractor, part_filename
from mailsvc.interfaces import Directory
from mailsvc.message import Direction, InboundMessage, decoded_payload
from mailsvc.originator import Originator, read_originator
from mailsvc.pipeline.domains import organisational_domain
from mailsvc.pipeline.lookalike import lookalike_problem
from mailsvc.policy.spam import SPAM_STAGE, SpamPolicy
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE_VBA = "_VBA_PROJECT".encode("utf-16-le")
_OLE_MACROS = "Macros".encode("utf-16-le")
_URL = re.compile(r"""\bhttps?://[^\s<>"'()\[\]{}]+""", re.IGNORECASE)
_DOMAINISH = re.compile(
    r"(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})(?=[/:\s]|$)",
    re.IGNORECASE,
)
_EMAILISH = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")


@dataclass(frozen=True)
class Hit:
    """One rule that matched, with what it saw: the finding's payload.

    ``seen`` holds what matched (link hosts, file names, header names, addresses, the
    mailer, the domain), at most 20; ``count`` how many matched in all; ``shown`` what the
    reader is shown instead (link text, display name) and ``where`` the field it was in.
    """

    rule: str
    detail: str
    seen: tuple[str, ...] = ()
    count: int = 0
    shown: str = ""
    where: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.seen:
            out["seen"] = list(self.seen)
        if self.count:
            out["count"] = self.count
        if self.shown:
            out["shown"] = self.shown
        if self.where:
            out["where"] = self.where
        return out


# ---------------------------------------------------------------------------------------
# Content rules: pure functions of the raw message and the policy (run in the executor)
# ---------------------------------------------------------------------------------------


def _header_block(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, _ = raw.partition(separator)
        if found:
            return head
    return raw


def _header_names(head: bytes) -> list[str]:
    names = []
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _payload(part: Message, limit: int) -> bytes:
    try:
        data = decoded_payload(part)
    except (ValueError, TypeError, LookupError):
        return b""
    return data[:limit] if data is not None else b""


def _text(part: Message) -> str:
    data = _payload(part, 10 * 1024 * 1024)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, ValueError):  # a hostile charset name: see formats.decode_text
        return data.decode("utf-8", errors="replace")


class _Links(HTMLParser):
    """Collects (href, visible text) for <a> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close()
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def _close(self) -> None:
        if self._href is not None:
            self.links.append((self._href.strip(), " ".join("".join(self._text).split())))
        self._href = None
        self._text = []

    def close(self) -> None:
        super().close()
        self._close()


def _host(url: str) -> str:
    try:
        host = urllib.parse.urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def _is_ip_literal(host: str) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    # Obfuscated forms browsers accept: 3232235777, 0xc0a80001, 0300.0250.0.1
    return bool(re.fullmatch(r"(0x[0-9a-f]+|\d+)(\.(0x[0-9a-f]+|\d+)){0,3}", host))


def _in_domains(host: str, domains: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _link_rules(msg: Message, policy: SpamPolicy) -> list[Hit]:
    rules = policy.rules
    links: list[tuple[str, str]] = []  # (href, text); text "" for bare URLs
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            parser = _Links()
            parser.feed(_text(part))
            parser.close()
            links.extend(parser.links)
        elif ctype == "text/plain":
            text = _text(part)
            if "://" in text:  # the search costs 0.2 ms on 20 KB of Vietnamese without it
                links.extend((url, "") for url in _URL.findall(text))
    hits: list[Hit] = []
    ip_urls = [
        h
        for h, _ in links
        if h.lower().startswith(("http:", "https:")) and _is_ip_literal(_host(h))
    ]
    if rules.ip_literal_url.enabled and ip_urls:
        hits.append(
            Hit(
                "ip-literal-url",
                f"{len(ip_urls)} link(s) to an IP address",
                seen=tuple(_host(h) for h in ip_urls[:20]),
                count=len(ip_urls),
            )
        )
    shorteners = rules.url_shortener.domains
    short = [_host(h) for h, _ in links if _in_domains(_host(h), shorteners)]
    if rules.url_shortener.enabled and short:
        hits.append(
            Hit(
                "url-shortener",
                f"{len(short)} link(s) through a shortener",
                seen=tuple(short[:20]),
                count=len(short),
            )
        )
    mismatches = []
    for href, text in links:
        target = _host(href)
        if not text or not target or not href.lower().startswith(("http:", "https:")):
            continue
        shown = _DOMAINISH.search(text)
        if shown is None or _EMAILISH.search(text):
            continue
        shown_host = shown.group(1).lower()
        if _is_ip_literal(target):
            mismatches.append((shown_host, target))
        elif organisational_domain(shown_host) != organisational_domain(target):
            mismatches.append((shown_host, target))
    if rules.link_text_mismatch.enabled and mismatches:
        shown_host, target = mismatches[0]
        hits.append(
            Hit(
                "link-text-mismatch",
                f"text shows {shown_host}, link goes to {target}",
                seen=(target,),
                count=len(mismatches),
                shown=shown_host,
            )
        )
    return hits


def _extension(name: str) -> str:
    return name.rpartition(".")[2].strip().lower() if "." in name else ""


def _attachment_names(msg: Message) -> Iterator[tuple[str, Message]]:
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part_filename(part)
        if name:
            yield name, part


def _archive_names(data: bytes, policy: SpamPolicy) -> list[str]:
    rule = policy.rules.executable_attachment
    if len(data) > rule.max_archive_bytes or not data.startswith(b"PK"):
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()[: rule.max_archive_entries]
            return [info.filename.rpartition("/")[2] for info in infos if not info.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
        return []


def _has_vba(data: bytes, names: list[str] | None) -> str:
    """Why a document holds macros ("" if it does not seem to)."""
    if names is not None and any(n.lower().endswith("vbaproject.bin") for n in names):
        return "vbaProject.bin inside the OOXML package"
    if data.startswith(OLE_MAGIC) and (_OLE_VBA in data or _OLE_MACROS in data):
        return "VBA storage inside the OLE document"
    return ""


def _ooxml_members(data: bytes, limit: int) -> list[str] | None:
    if len(data) > limit or not data.startswith(b"PK"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.namelist()[:10000]
    except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
        return None


@functools.lru_cache(maxsize=8)
def _double_extension(decoys: tuple[str, ...], executables: frozenset[str]) -> re.Pattern[str]:
    """A decoy extension, then an executable one, at a name's end (built once per policy,
    not per message)."""
    decoy_alt = "|".join(re.escape(d) for d in decoys)
    exec_alt = "|".join(re.escape(e) for e in sorted(executables))
    return re.compile(rf"\.({decoy_alt})[\s._-]*\.({exec_alt})$", re.IGNORECASE)


def _attachment_rules(msg: Message, policy: SpamPolicy) -> list[Hit]:
    rules = policy.rules
    executables = frozenset(rules.executable_attachment.extensions)
    double = _double_extension(tuple(rules.double_extension.decoys), executables)
    executable_hits: list[str] = []
    double_hits: list[str] = []
    macro_hits: list[tuple[str, str]] = []

    def check_name(name: str, where: str) -> None:
        clean = name.strip().strip(".")
        if _BIDI.search(clean):
            double_hits.append(where + clean.encode("unicode_escape").decode("ascii"))
            clean = _BIDI.sub("", clean)
        if _extension(clean) in executables:
            executable_hits.append(where + clean)
            if double.search(clean):
                double_hits.append(where + clean)
        if _extension(clean) in rules.macro_office.extensions:
            macro_hits.append((where + clean, f".{_extension(clean)} is a macro-enabled format"))

    for name, part in _attachment_names(msg):
        check_name(name, "")
        ext = _extension(name)
        needs_data = (
            rules.executable_attachment.inspect_archives and ext in ("zip", "")
        ) or ext in ("doc", "xls", "ppt", "docx", "xlsx", "pptx", "dot", "xlt", "pot", "")
        if not needs_data:
            continue
        data = _payload(
            part,
            max(
                rules.macro_office.max_document_bytes, rules.executable_attachment.max_archive_bytes
            )
            + 1,
        )
        if ext == "zip" or (ext == "" and data.startswith(b"PK")):
            for inner in _archive_names(data, policy):
                check_name(inner, f"{name}/")
        members = _ooxml_members(data, rules.macro_office.max_document_bytes)
        why = _has_vba(data[: rules.macro_office.max_document_bytes], members)
        if why and not any(h[0] == name for h in macro_hits):
            macro_hits.append((name, why))
    hits: list[Hit] = []
    if rules.executable_attachment.enabled and executable_hits:
        hits.append(
            Hit(
                "executable-attachment",
                ", ".join(executable_hits[:5]),
                seen=tuple(executable_hits[:20]),
                count=len(executable_hits),
            )
        )
    if rules.double_extension.enabled and double_hits:
        hits.append(
            Hit(
                "double-extension",
                ", ".join(double_hits[:5]),
                seen=tuple(double_hits[:20]),
                count=len(double_hits),
            )
        )
    if rules.macro_office.enabled and macro_hits:
        hits.append(
            Hit(
                "macro-office",
                f"{macro_hits[0][0]}: {macro_hits[0][1]}",
                seen=tuple(n for n, _ in macro_hits[:20]),
                count=len(macro_hits),
            )
        )
    return hits


def _gtube(raw: bytes, msg: Message) -> bool:
    if GTUBE in raw:
        return True
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text" and GTUBE in _payload(part, 10 * 1024 * 1024):
            return True
    return False


def _header_rules(
    raw: bytes, msg: Message, direction: str, policy: SpamPolicy, originator: Originator
) -> list[Hit]:
    rules = policy.rules
    hits: list[Hit] = []
    head = _header_block(raw)
    names = _header_names(head)
    if direction != Direction.SUBMISSION.value:
        # A submitting client may leave these to the server.
        if rules.missing_date.enabled and "date" not in names:
            hits.append(Hit("missing-date", "no Date header"))
        if rules.missing_message_id.enabled and "message-id" not in names:
            hits.append(Hit("missing-message-id", "no Message-ID header"))
    from_count = names.count("from")
    # parsed once, bounded (mailsvc.originator); display names decoded
    addresses = list(originator.from_)
    if rules.multiple_from.enabled and (from_count > 1 or len(addresses) > 1):
        hits.append(
            Hit(
                "multiple-from",
                f"{from_count} From header(s), {len(addresses)} address(es)",
                seen=tuple(str(a.addr_spec).lower() for a in addresses[:20]),
                count=from_count,
            )
        )
    if rules.display_name_spoof.enabled:
        # From: and Sender: (shown as "X on behalf of Y"); their comments count as names
        # too: "a@b (x@y)" is shown with x@y as the name by IMAP's ENVELOPE.
        for address in (*addresses, *originator.sender):
            shown = _EMAILISH.findall(address.shown_name)
            actual = str(address.addr_spec).lower()
            other = [s for s in shown if s.lower() != actual]
            if other:
                hits.append(
                    Hit(
                        "display-name-spoof",
                        f"display name shows {other[0]}, address is {actual}",
                        seen=(actual,),
                        shown=other[0].lower(),
                    )
                )
                break
    if rules.lookalike_domain.enabled:
        # The addresses a reader sees or answers to: a domain spelled with letters of
        # another script that look like Latin ones (mailsvc.pipeline.lookalike).
        for address in (*addresses, *originator.sender, *originator.reply_to):
            domain = str(address.addr_spec).rpartition("@")[2]
            problem = lookalike_problem(domain)
            if problem:
                hits.append(
                    Hit(
                        "lookalike-domain",
                        f"{domain}: {problem}",
                        seen=(str(address.addr_spec).lower(),),
                    )
                )
                break
    if rules.raw_8bit_header.enabled:
        lines = [ln for ln in head.splitlines() if not ln.isascii()]
        if lines:
            name = (
                lines[0].split(b":", 1)[0].decode("ascii", "replace") if b":" in lines[0] else "?"
            )
            hits.append(
                Hit(
                    "raw-8bit-header",
                    f"8-bit bytes in {len(lines)} header line(s)",
                    seen=(name[:40],),
                    count=len(lines),
                )
            )
    headers = set(names)
    bulk = policy.rules.bulk_headers
    if bulk.enabled:
        present = [h for h in bulk.headers if h.lower() in headers]
        precedence = str(msg.get("Precedence", "") or "").strip().lower()
        if precedence in bulk.precedence:
            present.append(f"Precedence: {precedence}")
        if present:
            hits.append(
                Hit("bulk-headers", ", ".join(present), seen=tuple(present), count=len(present))
            )
    mailer_rule = policy.rules.mass_mailer
    if mailer_rule.enabled:
        mailer = " ".join(str(msg.get(h, "") or "") for h in ("X-Mailer", "User-Agent")).lower()
        found = next((m for m in mailer_rule.mailers if m.lower() in mailer), None)
        if found:
            hits.append(Hit("mass-mailer", f"mailer {found!r}", seen=(found,)))
    return hits


def content_hits(raw: bytes, direction: str, policy: SpamPolicy) -> list[Hit]:
    """Every rule that needs only the message (CPU; picklable for a process pool)."""
    return _content_hits(raw, _parse(raw), direction, policy, read_originator(raw))


def view_hits(view: MessageView, policy: SpamPolicy) -> list[Hit]:
    """``content_hits`` on the worker's one parse of the message (an analysis task), with
    the originator fields the SMTP process parsed (``MessageView.originator``)."""
    if view.message is None:  # the parse overran its CPU budget: classification errs
        return []
    return _content_hits(view.raw, view.message, view.direction, policy, view.originator)


def _content_hits(
    raw: bytes, msg: Message, direction: str, policy: SpamPolicy, originator: Originator
) -> list[Hit]:
    hits: list[Hit] = []
    if policy.rules.gtube.enabled and _gtube(raw, msg):
        hits.append(Hit("gtube", "GTUBE test string"))
    hits.extend(_header_rules(raw, msg, direction, policy, originator))
    hits.extend(_link_rules(msg, policy))
    hits.extend(_attachment_rules(msg, policy))
    return hits


# ---------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""


class SpamStage:
    """Built-in spam rules; the runner totals scores over all stages and decides."""

    name = SPAM_STAGE
    description = "Spam rules from policies/spam.yaml (scores only; the runner decides)"

    def __init__(
        self, directory: Directory, policy: SpamPolicy, extractor: TextExtractor | None = None
    ) -> None:
        """``extractor``: the content rules run in its worker call, on its one parse of
        the message (None: a private extractor in threads, for tools and tests)."""
        self._directory = directory
        self._policy = policy
        self._extractor = extractor or TextExtractor(None)
        self._extractor.add_task(self.name, view_hits, policy)

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        hits = self._sender_rules(msg)
        try:
            found: list[Hit] = (await self._extractor.analyse(msg)).result(self.name)
        except ExtractionError as exc:
            return (
                Finding(
                    stage=self.name,
                    status=Status.ERROR,
                    reason="spam-check-unavailable",
                    detail=str(exc),
                ),
            )
        hits.extend(found or ())
        if not hits:
            return (Finding(stage=self.name, status=Status.PASS, reason="spam-clean"),)
        order = {name: i for i, name in enumerate(self._policy.rules.by_name())}
        hits.sort(key=lambda h: order.get(h.rule, len(order)))
        rules = self._policy.rules.by_name()
        return tuple(
            Finding(
                stage=self.name,
                status=Status.FAIL,
                reason=hit.rule,
                detail=hit.detail,
                score=rules[hit.rule].score,
                payload=hit,
            )
            for hit in hits
        )

    def _sender_addresses(self, msg: InboundMessage) -> list[tuple[str, str]]:
        """(where, address) for the envelope sender, From, Sender and Reply-To."""
        found = [("MAIL FROM", msg.mail_from.lower())] if msg.mail_from else []
        originator = msg.originator  # parsed once per message, bounded (mailsvc.originator)
        for header, mailboxes in (
            ("From", originator.from_),
            ("Sender", originator.sender),
            ("Reply-To", originator.reply_to),
        ):
            found.extend((header, m.addr_spec.lower()) for m in mailboxes if m.addr_spec)
        return found

    def _sender_rules(self, msg: InboundMessage) -> list[Hit]:
        rules = self._policy.rules
        hits: list[Hit] = []
        addresses = self._sender_addresses(msg)
        if rules.free_mail_sender.enabled:
            free = [
                (where, address)
                for where, address in addresses
                if _in_domains(_domain_of(address), self._policy.free_mail_domains)
            ]
            if free:
                where, address = free[0]
                hits.append(
                    Hit(
                        "free-mail-sender",
                        f"{where} {address} is a foreign free-mail service",
                        seen=(address,),
                        where=where,
                    )
                )
        if rules.unknown_sender_domain.enabled:
            domain = _domain_of(msg.from_address) or msg.sender_domain
            if domain and not self._known(domain):
                hits.append(
                    Hit(
                        "unknown-sender-domain",
                        f"{domain} is not in the agency directory",
                        seen=(domain,),
                    )
                )
        return hits

    def _known(self, domain: str) -> bool:
        if self._directory.is_local_domain(domain):
            return True
        if self._directory.agency_for_domain(domain) is not None:
            return True
        org = organisational_domain(domain)
        return org != domain and self._directory.agency_for_domain(org) is not None
