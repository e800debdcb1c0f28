"""AuthenticationStage table tests: message in, findings out.

Messages are signed with dkimpy at test time (keys generated per module); DNS answers
come from a real DNS server on loopback, or from pinned directory data with no DNS.
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsvc.adapters.dns import ChainedResolver, DnsResolver, PinnedResolver
from mailsvc.interfaces import AgencyInfo
from mailsvc.message import Direction, InboundMessage
from mailsvc.outbound.dkim import DkimSigner
from mailsvc.pipeline.authentication import (
    AuthenticationStage,
    DkimResults,
    DkimSignatureResult,
    DmarcOutcome,
    SpfOutcome,
    _from_domain,
    _from_domains,
    check_spf,
    format_authentication_results,
    is_aligned,
    organisational_domain,
    parse_dmarc_record,
)
from mailsvc.policy.authentication import AuthenticationPolicy, DkimPolicy, DmarcPolicy
from mailsvc.verdict import Finding, Status
from tests.dns_server import DnsTestServer
from tests.spf_zone import ZoneResolver

DATA = Path(__file__).resolve().parents[1] / "data" / "origin"
SENDER_IP = "192.0.2.25"  # the sending agencies' outbound MTA
OTHER_IP = "203.0.113.66"


def _pem(bits: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass
class Keys:
    signers: dict[str, DkimSigner] = field(default_factory=dict)

    def signer(self, name: str) -> DkimSigner:
        return self.signers[name]


@pytest.fixture(scope="module")
def keys() -> Keys:
    """Private keys: hanoi (DNS), list (DNS), stp (pinned in the directory), weak (1024)."""
    hanoi, lists, stp, weak, soyte = _pem(2048), _pem(2048), _pem(2048), _pem(1024), _pem(2048)
    return Keys(
        {
            "hanoi": DkimSigner(hanoi, "k2026", "hanoi.gov.vn"),
            "hanoi-sub": DkimSigner(hanoi, "k2026", "hanoi.gov.vn"),
            "list": DkimSigner(lists, "list", "lists.example.org"),
            "stp": DkimSigner(stp, "mail", "stp.example.vn"),
            "weak": DkimSigner(weak, "weak", "hanoi.gov.vn"),
            "unpublished": DkimSigner(lists, "gone", "hanoi.gov.vn"),
            "broken-dns": DkimSigner(lists, "k1", "servfail.example.com"),
            # Sở Y tế pins one key (selector "mail") for soyte.example.vn and its subdomains
            "soyte-sub": DkimSigner(soyte, "mail", "hcm.soyte.example.vn"),
            # the same selector under an exact-domain agency's subdomain: not pinned
            "stp-sub": DkimSigner(stp, "mail", "sub.stp.example.vn"),
            # a stranger's key under the pinned agency's selector (published in DNS below)
            "stp-forged": DkimSigner(lists, "mail", "stp.example.vn"),
        }
    )


@pytest.fixture(scope="module")
def dns(keys: Keys) -> Iterator[DnsTestServer]:
    server = DnsTestServer().start()
    add = server.add
    add("k2026._domainkey.hanoi.gov.vn", "TXT", keys.signer("hanoi").txt_value())
    add("weak._domainkey.hanoi.gov.vn", "TXT", keys.signer("weak").txt_value())
    add("list._domainkey.lists.example.org", "TXT", keys.signer("list").txt_value())
    add("gone._domainkey.hanoi.gov.vn", "TXT", "v=DKIM1; k=rsa; p=")  # revoked key
    # DNS disagrees with the directory's pinned key: the pinned key must win
    add("mail._domainkey.stp.example.vn", "TXT", keys.signer("stp-forged").txt_value())
    # hanoi.gov.vn: SPF by ip4 via include, DMARC reject with strict DKIM for subdomains
    add("hanoi.gov.vn", "TXT", "v=spf1 include:_spf.hanoi.gov.vn -all")
    add("_spf.hanoi.gov.vn", "TXT", f"v=spf1 ip4:{SENDER_IP} ip6:2001:db8:25::/48 -all")
    add(
        "_dmarc.hanoi.gov.vn", "TXT", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@hanoi.gov.vn"
    )
    add("mx.hanoi.gov.vn", "A", SENDER_IP)
    # quang-ninh.gov.vn: softfail, p=quarantine, strict alignment
    add("quangninh.gov.vn", "TXT", "v=spf1 a:mx.hanoi.gov.vn ~all")
    add("_dmarc.quangninh.gov.vn", "TXT", "v=DMARC1; p=quarantine; adkim=s; aspf=s")
    add("mail.quangninh.gov.vn", "TXT", "v=spf1 redirect=quangninh.gov.vn")
    # example.org: neutral SPF, p=none
    add("lists.example.org", "TXT", "v=spf1 mx/24 ?all")
    add("lists.example.org", "MX", "10 mx.lists.example.org.")
    add("mx.lists.example.org", "A", "198.51.100.7")
    add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    # SPF oddities
    add("two.example.net", "TXT", "v=spf1 -all")
    add("two.example.net", "TXT", "v=spf1 +all")
    add("exists.example.net", "TXT", "v=spf1 exists:%{i}.allow.example.net -all")
    add(f"{SENDER_IP}.allow.example.net", "A", "127.0.0.2")
    for i in range(12):
        add(f"loop{i}.example.net", "TXT", f"v=spf1 include:loop{i + 1}.example.net -all")
    add("loop12.example.net", "TXT", "v=spf1 -all")
    add("void.example.net", "TXT", "v=spf1 a:n1.example.net a:n2.example.net a:n3.example.net -all")
    add("typo.example.net", "TXT", "v=spf1 ip4:192.0.2.1 allow -all")
    add("tempinclude.example.net", "TXT", "v=spf1 include:servfail.example.com -all")
    server.fail("servfail.example.com", "servfail")
    server.fail("k1._domainkey.servfail.example.com", "servfail")
    server.fail("_dmarc.dnsdown.example", "servfail")
    add("dnsdown.example", "TXT", "v=spf1 -all")
    # ptr: 198.51.100.77 names two hosts; the first one's A lookup fails (RFC 7208 5.5)
    add("77.100.51.198.in-addr.arpa", "PTR", "broken.ptr.example.net.")
    add("77.100.51.198.in-addr.arpa", "PTR", "mail.elsewhere.example.org.")
    server.fail("broken.ptr.example.net", "servfail")
    add("mail.elsewhere.example.org", "A", "198.51.100.77")
    add("ptr.example.net", "TXT", "v=spf1 ptr -all")
    add("elsewhere.example.org", "TXT", "v=spf1 ptr -all")
    server.fail("78.100.51.198.in-addr.arpa", "servfail")  # the PTR lookup itself fails
    # exp= with the sender's local part: the case MAIL FROM was sent in is kept
    add("case.example.net", "TXT", "v=spf1 -all exp=why.case.example.net")
    add("why.case.example.net", "TXT", "%{l} may not send from %{i}")
    # an IDN sender domain (bộ.example.vn), published in A-label form
    add("xn--b-8xm.example.vn", "TXT", f"v=spf1 ip4:{SENDER_IP} -all")
    # co.za is a public suffix: evil.co.za must not align with victim.co.za
    add("_dmarc.victim.co.za", "TXT", "v=DMARC1; p=reject")
    add("evil.co.za", "TXT", f"v=spf1 ip4:{OTHER_IP} -all")
    yield server
    server.stop()


class Directory:
    """Agency directory: Sở Tư pháp pins its DKIM key and sending addresses."""

    def __init__(self, keys: Keys) -> None:
        self.stp = AgencyInfo(
            code="000.00.31.H26",
            name="Sở Tư pháp",
            domains=("stp.example.vn",),
            dkim_keys={"mail._domainkey.stp.example.vn": keys.signer("stp").txt_value()},
            allowed_senders=("10.20.0.0/16", "2001:db8:20::/48"),
        )
        self.soyte = AgencyInfo(
            code="000.00.32.H26",
            name="Sở Y tế",
            domains=("soyte.example.vn",),
            dkim_keys={"mail._domainkey.soyte.example.vn": keys.signers["soyte-sub"].txt_value()},
            allowed_senders=("10.30.0.0/16",),
            include_subdomains=True,
        )

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        for agency in (self.stp, self.soyte):
            if domain in agency.domains:
                return agency
        return None

    def is_local_domain(self, domain: str) -> bool:
        return domain == "sotttt.example.vn"


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(
    from_: str = "Văn thư <vanthu@hanoi.gov.vn>",
    body: str = "Kính gửi Sở Thông tin và Truyền thông.\n",
    extra_headers: str = "",
) -> bytes:
    head = (
        f"From: {from_}\nTo: vanthu@sotttt.example.vn\nSubject: =?utf-8?q?C=C3=B4ng_v=C4=83n?=\n"
        "Date: Fri, 20 Nov 2026 08:30:00 +0700\nMessage-ID: <m1@hanoi.gov.vn>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n" + extra_headers
    )
    return crlf(head.encode() + b"\n" + body.encode())


def inbound(
    raw: bytes,
    mail_from: str = "vanthu@hanoi.gov.vn",
    ip: str = SENDER_IP,
    helo: str = "mx.hanoi.gov.vn",
    direction: Direction = Direction.INBOUND,
) -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=mail_from,
        rcpt_tos=("vanthu@sotttt.example.vn",),
        raw=raw,
        received_at=dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC),
        client_ip=ip,
        client_helo=helo,
        direction=direction,
        authenticated_as="annv.stttt" if direction is Direction.SUBMISSION else None,
    )


@pytest.fixture
def stage(dns: DnsTestServer, keys: Keys) -> AuthenticationStage:
    directory = Directory(keys)
    resolver = ChainedResolver(
        PinnedResolver(directory=directory), DnsResolver(["127.0.0.1"], dns.port, timeout=0.5)
    )
    return AuthenticationStage(
        directory, resolver, AuthenticationPolicy(), "mail.sotttt.example.vn"
    )


def by_method(findings: tuple[Finding, ...]) -> dict[str, Finding]:
    assert all(f.stage == "authentication" for f in findings)
    return {f.reason.split("-")[0]: f for f in findings}


def sign(keys: Keys, raw: bytes, *names: str, **options: object) -> bytes:
    for name in names:
        signer = keys.signer(name)
        if options:
            signer = DkimSigner(signer._pem, signer.selector, signer.domain, **options)  # type: ignore[arg-type]
        raw = signer.sign(raw)
    return raw


Mutation = Callable[[bytes], bytes]


def append_body(raw: bytes) -> bytes:
    return raw + b"\r\nP.S. Chuyen khoan vao tai khoan moi: 0123456789\r\n"


def change_body(raw: bytes) -> bytes:
    return raw.replace("Sở Thông tin".encode(), "Sở Tài chính".encode())


def change_subject(raw: bytes) -> bytes:
    return raw.replace(b"C=C3=B4ng_v=C4=83n", b"Gi=E1=BA=A5y_m=E1=BB=9Di")


def add_from(raw: bytes) -> bytes:
    return b"From: Giam doc <giamdoc@evil.example>\r\n" + raw


def refold_headers(raw: bytes) -> bytes:
    """What a relaying MTA may do: change whitespace in headers and at line ends."""
    head, _, body = raw.partition(b"\r\n\r\n")
    head = head.replace(b"Subject: ", b"Subject:    ")
    return head + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n")


@dataclass(frozen=True)
class Case:
    name: str
    signers: tuple[str, ...]
    expect: tuple[str, str, str]  # dkim, spf, dmarc reasons
    options: dict[str, object] = field(default_factory=dict)
    mutate: Mutation | None = None
    from_: str = "Văn thư <vanthu@hanoi.gov.vn>"
    mail_from: str = "vanthu@hanoi.gov.vn"
    ip: str = SENDER_IP
    helo: str = "mx.hanoi.gov.vn"


CASES = [
    Case(
        "dns key relaxed, spf include, dmarc", ("hanoi",), ("dkim-pass", "spf-pass", "dmarc-pass")
    ),
    Case(
        "simple/simple",
        ("hanoi",),
        ("dkim-pass", "spf-pass", "dmarc-pass"),
        options={"canonicalize": ("simple", "simple")},
    ),
    Case(
        "relaxed survives refolding",
        ("hanoi",),
        ("dkim-pass", "spf-fail", "dmarc-pass"),
        options={"canonicalize": ("relaxed", "relaxed")},
        mutate=refold_headers,
        ip=OTHER_IP,
    ),
    Case(
        "simple breaks on refolding",
        ("hanoi",),
        ("dkim-fail", "spf-fail", "dmarc-reject"),
        options={"canonicalize": ("simple", "simple")},
        mutate=refold_headers,
        ip=OTHER_IP,
    ),
    Case(
        "forged body, other address",
        ("hanoi",),
        ("dkim-fail", "spf-fail", "dmarc-reject"),
        mutate=change_body,
        ip=OTHER_IP,
    ),
    Case(
        "forged subject",
        ("hanoi",),
        ("dkim-fail", "spf-fail", "dmarc-reject"),
        mutate=change_subject,
        ip=OTHER_IP,
    ),
    Case(
        "second From added",
        ("hanoi",),
        ("dkim-fail", "spf-pass", "dmarc-permerror"),
        mutate=add_from,
    ),
    Case(
        "l= tag, body appended",
        ("hanoi",),
        ("dkim-pass", "spf-pass", "dmarc-pass"),
        options={"body_length": True},
        mutate=append_body,
    ),
    Case(
        "no l= tag, body appended",
        ("hanoi",),
        ("dkim-fail", "spf-pass", "dmarc-pass"),
        mutate=append_body,
    ),
    Case(
        "several signatures: author and list",
        ("hanoi", "list"),
        ("dkim-pass", "spf-pass", "dmarc-pass"),
    ),
    Case(
        "list signature only: not aligned, p=reject",
        ("list",),
        ("dkim-pass", "spf-fail", "dmarc-reject"),
        ip=OTHER_IP,
    ),
    Case(
        "list signature and SPF aligned with list, From at example.org",
        ("list",),
        ("dkim-pass", "spf-pass", "dmarc-pass"),
        from_="Ban tin <tin@lists.example.org>",
        mail_from="bounce@lists.example.org",
        ip="198.51.100.20",
    ),
    Case("unsigned", (), ("dkim-none", "spf-pass", "dmarc-pass")),
    Case(
        "unsigned from elsewhere: p=reject",
        (),
        ("dkim-none", "spf-fail", "dmarc-reject"),
        ip=OTHER_IP,
    ),
    Case(
        "revoked key",
        ("unpublished",),
        ("dkim-permerror", "spf-fail", "dmarc-reject"),
        ip=OTHER_IP,
    ),
    Case(
        "key lookup SERVFAIL",
        ("broken-dns",),
        ("dkim-temperror", "spf-pass", "dmarc-pass"),
    ),
    Case(
        "pinned key and pinned senders, no DNS",
        ("stp",),
        ("dkim-pass", "spf-pass", "dmarc-pass"),
        from_="Văn thư <vanthu@stp.example.vn>",
        mail_from="vanthu@stp.example.vn",
        ip="10.20.3.4",
        helo="mail.stp.example.vn",
    ),
    Case(
        "pinned key, forged body, foreign address",
        ("stp",),
        ("dkim-fail", "spf-fail", "dmarc-reject"),
        mutate=change_body,
        from_="Văn thư <vanthu@stp.example.vn>",
        mail_from="vanthu@stp.example.vn",
        ip=OTHER_IP,
    ),
    Case(
        "agency domain spoofed by a stranger's key",
        ("list",),
        ("dkim-pass", "spf-fail", "dmarc-reject"),
        from_="Văn thư <vanthu@stp.example.vn>",
        mail_from="vanthu@stp.example.vn",
        ip=OTHER_IP,
    ),
    Case(
        "subdomain: relaxed DKIM alignment, sp=quarantine on failure",
        ("hanoi",),
        ("dkim-pass", "spf-none", "dmarc-pass"),
        from_="Phòng <p@vp.hanoi.gov.vn>",
        mail_from="p@vp.hanoi.gov.vn",
    ),
    Case(
        "subdomain failing gets sp=",
        (),
        ("dkim-none", "spf-none", "dmarc-quarantine"),
        from_="Phòng <p@vp.hanoi.gov.vn>",
        mail_from="p@vp.hanoi.gov.vn",
    ),
    Case(
        "strict alignment: parent-domain signature does not align",
        ("hanoi",),
        ("dkim-pass", "spf-softfail", "dmarc-quarantine"),
        from_="<a@quangninh.gov.vn>",
        mail_from="a@quangninh.gov.vn",
        ip=OTHER_IP,
    ),
    Case(
        "strict SPF alignment with redirect",
        (),
        ("dkim-none", "spf-pass", "dmarc-pass"),
        from_="<a@quangninh.gov.vn>",
        mail_from="a@quangninh.gov.vn",
    ),
    Case(
        "strict SPF: subdomain envelope does not align",
        (),
        ("dkim-none", "spf-pass", "dmarc-quarantine"),
        from_="<a@quangninh.gov.vn>",
        mail_from="a@mail.quangninh.gov.vn",
    ),
    Case(
        "p=none failure",
        (),
        ("dkim-none", "spf-neutral", "dmarc-fail"),
        from_="<tin@lists.example.org>",
        mail_from="bounce@lists.example.org",
        ip=OTHER_IP,
    ),
    Case(
        "no DMARC record anywhere",
        (),
        ("dkim-none", "spf-none", "dmarc-none"),
        from_="<someone@nowhere.example>",
        mail_from="someone@nowhere.example",
    ),
    Case(
        "DMARC lookup SERVFAIL",
        (),
        ("dkim-none", "spf-fail", "dmarc-temperror"),
        from_="<a@dnsdown.example>",
        mail_from="a@dnsdown.example",
    ),
    Case(
        "key below the policy's minimum size",
        ("weak",),
        ("dkim-permerror", "spf-pass", "dmarc-pass"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_origin_table(stage: AuthenticationStage, keys: Keys, case: Case) -> None:
    if case.name.startswith("key below"):
        stage._policy = AuthenticationPolicy(dkim=DkimPolicy(min_key_bits=2048))
    raw = sign(keys, message(from_=case.from_), *case.signers, **case.options)
    if case.mutate:
        raw = case.mutate(raw)
    msg = inbound(raw, mail_from=case.mail_from, ip=case.ip, helo=case.helo)
    findings = await stage.inspect(msg)
    assert tuple(f.reason for f in findings) == case.expect
    expected_status = {
        "pass": Status.PASS,
        "fail": Status.FAIL,
        "softfail": Status.FAIL,
        "permerror": Status.FAIL,
        "reject": Status.FAIL,
        "quarantine": Status.FAIL,
        "temperror": Status.ERROR,
        "none": Status.NONE,
        "neutral": Status.NONE,
    }
    for finding in findings:
        assert finding.status is expected_status[finding.reason.split("-", 1)[1]], finding
        assert finding.auth_result and finding.auth_result.startswith(finding.reason.split("-")[0])


async def test_authentication_results_entries(stage: AuthenticationStage, keys: Keys) -> None:
    raw = sign(keys, message(), "list", "hanoi")  # hanoi's signature is on top
    findings = await stage.inspect(inbound(raw))
    dkim, spf, dmarc = findings
    entries = dkim.auth_result.split("; ") if dkim.auth_result else []
    assert entries[0].startswith("dkim=pass header.d=hanoi.gov.vn header.s=k2026 header.b=")
    assert entries[1].startswith("dkim=pass header.d=lists.example.org header.s=list")
    assert isinstance(dkim.payload, DkimResults)
    assert all(isinstance(r, DkimSignatureResult) for r in dkim.payload.signatures)
    assert len(dkim.payload.signatures) == 2
    assert spf.auth_result == (
        f"spf=pass (hanoi.gov.vn: pass for {SENDER_IP}) smtp.mailfrom=vanthu@hanoi.gov.vn"
    )
    assert dmarc.auth_result == "dmarc=pass (p=reject) header.from=hanoi.gov.vn"
    header = format_authentication_results("mail.sotttt.example.vn", findings)
    assert header.startswith("mail.sotttt.example.vn; dkim=pass header.d=hanoi.gov.vn")
    assert header.endswith("dmarc=pass (p=reject) header.from=hanoi.gov.vn")


async def test_body_length_tag_reports_unsigned_bytes(
    stage: AuthenticationStage, keys: Keys
) -> None:
    raw = append_body(sign(keys, message(), "hanoi", body_length=True))
    dkim, _, _ = await stage.inspect(inbound(raw))
    assert dkim.status is Status.PASS
    assert isinstance(dkim.payload, DkimResults)
    assert dkim.payload.unsigned_body_bytes == len(
        b"\r\nP.S. Chuyen khoan vao tai khoan moi: 0123456789\r\n"
    )
    assert "body bytes not signed" in (dkim.auth_result or "")


async def test_a_dkim_pass_that_leaves_body_unsigned_proves_no_origin(
    stage: AuthenticationStage, keys: Keys
) -> None:
    """l= lets anyone append to a signed body (a new part, a changed account number) and
    replay it: such a pass does not align for DMARC. From another address than the
    agency's (SPF fails), the message is then not proven to come from hanoi.gov.vn."""
    signed = sign(keys, message(), "hanoi", body_length=True)
    whole = by_method(await stage.inspect(inbound(signed, ip=OTHER_IP)))
    assert whole["dmarc"].reason == "dmarc-pass"  # l= covering the whole body: as before
    replayed = by_method(await stage.inspect(inbound(append_body(signed), ip=OTHER_IP)))
    assert replayed["dkim"].reason == "dkim-pass" and replayed["spf"].reason == "spf-fail"
    assert replayed["dmarc"].reason == "dmarc-reject", replayed["dmarc"].detail
    assert "body bytes after l=" in replayed["dmarc"].detail


async def test_one_bad_signature_among_good_ones_is_still_a_pass(
    stage: AuthenticationStage, keys: Keys
) -> None:
    raw = sign(keys, message(), "unpublished", "hanoi", "broken-dns")
    dkim, _, dmarc = await stage.inspect(inbound(raw, ip=OTHER_IP))
    assert isinstance(dkim.payload, DkimResults)
    results = {r.selector: r.result for r in dkim.payload.signatures}
    assert results == {"k1": "temperror", "k2026": "pass", "gone": "permerror"}
    assert dkim.reason == "dkim-pass"
    assert dmarc.reason == "dmarc-pass"


async def test_real_sample_message_signed_and_checked(
    stage: AuthenticationStage, keys: Keys
) -> None:
    raw = crlf((DATA / "cong-van.eml").read_bytes())
    signed = sign(keys, raw, "stp")
    msg = inbound(
        signed, mail_from="vanthu@stp.example.vn", ip="2001:db8:20::5", helo="mail.stp.example.vn"
    )
    reasons = [f.reason for f in await stage.inspect(msg)]
    assert reasons == ["dkim-pass", "spf-pass", "dmarc-pass"]


async def test_closed_network_needs_no_dns(keys: Keys, dns: DnsTestServer) -> None:
    directory = Directory(keys)
    stage = AuthenticationStage(
        directory,
        ChainedResolver(PinnedResolver(directory=directory)),
        AuthenticationPolicy(),
        "mx",
    )
    before = sum(dns.queries.values())
    raw = crlf((DATA / "cong-van.eml").read_bytes())
    good = await stage.inspect(
        inbound(sign(keys, raw, "stp"), mail_from="vanthu@stp.example.vn", ip="10.20.9.9")
    )
    forged = await stage.inspect(
        inbound(
            change_body(sign(keys, raw, "stp")), mail_from="vanthu@stp.example.vn", ip="10.99.9.9"
        )
    )
    assert [f.reason for f in good] == ["dkim-pass", "spf-pass", "dmarc-pass"]
    assert [f.reason for f in forged] == ["dkim-fail", "spf-fail", "dmarc-reject"]
    # a stranger in a closed network: nothing to check against, so none (not an error)
    other = await stage.inspect(inbound(message(from_="<a@hanoi.gov.vn>")))
    assert [f.reason for f in other] == ["dkim-none", "spf-none", "dmarc-none"]
    assert sum(dns.queries.values()) == before


async def test_directory_policy_can_be_switched_off(keys: Keys) -> None:
    directory = Directory(keys)
    policy = AuthenticationPolicy(dmarc=DmarcPolicy(directory_policy="none"))
    stage = AuthenticationStage(
        directory, ChainedResolver(PinnedResolver(directory=directory)), policy, "mx"
    )
    msg = inbound(
        message(from_="<vanthu@stp.example.vn>"), mail_from="vanthu@stp.example.vn", ip=OTHER_IP
    )
    assert [f.reason for f in await stage.inspect(msg)] == ["dkim-none", "spf-fail", "dmarc-none"]


async def test_submission_is_not_checked(stage: AuthenticationStage, dns: DnsTestServer) -> None:
    before = sum(dns.queries.values())
    msg = inbound(message(from_="<annv.stttt@sotttt.example.vn>"), direction=Direction.SUBMISSION)
    (finding,) = await stage.inspect(msg)
    assert (finding.status, finding.reason) == (Status.NONE, "authenticated-submission")
    assert sum(dns.queries.values()) == before


async def test_null_sender_checks_helo(stage: AuthenticationStage) -> None:
    msg = inbound(message(), mail_from="", helo="hanoi.gov.vn")
    _, spf, _ = await stage.inspect(msg)
    assert spf.reason == "spf-pass"
    assert spf.auth_result and spf.auth_result.endswith("smtp.helo=hanoi.gov.vn")


async def test_process_pool_executor(dns: DnsTestServer, keys: Keys) -> None:
    """app.py may hand a process pool: the DKIM work must pickle."""
    directory = Directory(keys)
    resolver = DnsResolver(["127.0.0.1"], dns.port, timeout=0.5)
    with ProcessPoolExecutor(max_workers=1) as pool:
        stage = AuthenticationStage(
            directory, resolver, AuthenticationPolicy(), "mx", executor=pool
        )
        findings = await stage.inspect(inbound(sign(keys, message(), "hanoi", "list")))
    assert [f.reason for f in findings] == ["dkim-pass", "spf-pass", "dmarc-pass"]


# -- SPF details -------------------------------------------------------------------------


@pytest.fixture
def resolver(dns: DnsTestServer) -> DnsResolver:
    return DnsResolver(["127.0.0.1"], dns.port, timeout=0.5)


@pytest.mark.parametrize(
    ("sender", "ip", "expected"),
    [
        ("a@hanoi.gov.vn", SENDER_IP, "pass"),
        ("a@hanoi.gov.vn", "2001:db8:25::1", "pass"),
        ("a@hanoi.gov.vn", "::ffff:" + SENDER_IP, "pass"),
        ("a@hanoi.gov.vn", OTHER_IP, "fail"),
        ("a@quangninh.gov.vn", SENDER_IP, "pass"),  # a:host
        ("a@quangninh.gov.vn", OTHER_IP, "softfail"),
        ("a@mail.quangninh.gov.vn", OTHER_IP, "softfail"),  # redirect=
        ("a@lists.example.org", "198.51.100.200", "pass"),  # mx/24
        ("a@lists.example.org", OTHER_IP, "neutral"),
        ("a@exists.example.net", SENDER_IP, "pass"),  # exists:%{i}...
        ("a@exists.example.net", OTHER_IP, "fail"),
        ("a@nothing.example.net", SENDER_IP, "none"),
        ("a@two.example.net", SENDER_IP, "permerror"),  # two records
        ("a@loop0.example.net", SENDER_IP, "permerror"),  # more than 10 includes
        ("a@void.example.net", SENDER_IP, "permerror"),  # more than 2 void lookups
        ("a@typo.example.net", SENDER_IP, "permerror"),  # unknown mechanism
        ("a@tempinclude.example.net", SENDER_IP, "temperror"),
        ("a@servfail.example.com", SENDER_IP, "temperror"),
    ],
)
async def test_spf_results(resolver: DnsResolver, sender: str, ip: str, expected: str) -> None:
    outcome = await check_spf(resolver, ip, sender, "helo.example")
    assert outcome.result.value == expected, outcome.detail


async def test_spf_lookup_limit_counts(resolver: DnsResolver) -> None:
    outcome = await check_spf(resolver, SENDER_IP, "a@loop0.example.net", "h")
    assert "more than 10" in outcome.detail
    assert outcome.lookups == 11


async def test_ptr_skips_a_name_whose_address_lookup_fails(resolver: DnsResolver) -> None:
    """RFC 7208 5.5: a DNS error on one PTR name's A lookup skips that name, no temperror.

    Both names are looked at whatever order DNS gives them in: for ptr.example.net
    neither matches (broken.ptr... is skipped), for elsewhere.example.org the other does.
    """
    outcome = await check_spf(resolver, "198.51.100.77", "a@ptr.example.net", "h")
    assert outcome.result.value == "fail", outcome.detail
    outcome = await check_spf(resolver, "198.51.100.77", "a@elsewhere.example.org", "h")
    assert outcome.result.value == "pass", outcome.detail


async def test_ptr_lookup_error_is_no_match(resolver: DnsResolver) -> None:
    outcome = await check_spf(resolver, "198.51.100.78", "a@ptr.example.net", "h")
    assert outcome.result.value == "fail", outcome.detail


async def test_macros_see_mail_from_as_sent(stage: AuthenticationStage) -> None:
    msg = replace(
        inbound(message(), mail_from="jack.sprat@case.example.net", ip=OTHER_IP),
        mail_from_as_sent="Jack.Sprat@case.example.net",
    )
    spf = by_method(await stage.inspect(msg))["spf"]
    assert spf.reason == "spf-fail"
    assert isinstance(spf.payload, SpfOutcome)
    assert spf.payload.explanation == f"Jack.Sprat may not send from {OTHER_IP}"
    assert f"Jack.Sprat may not send from {OTHER_IP}" in spf.auth_result


async def test_idn_sender_domain_is_checked_in_a_label_form(resolver: DnsResolver) -> None:
    outcome = await check_spf(resolver, SENDER_IP, "văn.thư@bộ.example.vn", "h")
    assert (outcome.result.value, outcome.domain) == ("pass", "xn--b-8xm.example.vn")
    outcome = await check_spf(resolver, OTHER_IP, "vanthu@BỘ.example.vn", "h")
    assert outcome.result.value == "fail"


async def test_invalid_idn_sender_domain_is_none(resolver: DnsResolver) -> None:
    outcome = await check_spf(resolver, SENDER_IP, "a@xn--zz\u1ed9.example.vn", "h")
    assert outcome.result.value == "none"
    assert "not a valid domain" in outcome.detail


def test_organisational_domain() -> None:
    assert organisational_domain("vp.hanoi.gov.vn") == "hanoi.gov.vn"
    assert organisational_domain("hanoi.gov.vn") == "hanoi.gov.vn"
    assert organisational_domain("mail.lists.example.org") == "example.org"
    assert organisational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organisational_domain("x.y.gov.example", ["gov.example"]) == "y.gov.example"
    # from the Public Suffix List, not a hand-made list: ICANN and private sections
    assert organisational_domain("mail.evil.co.za") == "evil.co.za"
    assert organisational_domain("victim.co.za") == "victim.co.za"
    assert organisational_domain("a.b.hcm.edu.vn") == "hcm.edu.vn"
    assert organisational_domain("pages.attacker.github.io") == "attacker.github.io"
    assert organisational_domain("gov.vn") == "gov.vn"  # a public suffix is its own
    assert organisational_domain("WWW.Example.COM.") == "example.com"
    # policy public_suffixes: private suffixes of a closed network, longest match wins
    assert organisational_domain("a.b.stp.mof.closed", ["mof.closed"]) == "stp.mof.closed"
    assert organisational_domain("a.b.stp.mof.closed") == "mof.closed"


async def test_public_suffix_sibling_does_not_align(stage: AuthenticationStage) -> None:
    """evil.co.za passes SPF for itself; that must not count for From: victim.co.za."""
    msg = inbound(
        message(from_="Ban giam doc <giamdoc@victim.co.za>"),
        mail_from="bounce@evil.co.za",
        ip=OTHER_IP,
    )
    findings = by_method(await stage.inspect(msg))
    assert findings["spf"].reason == "spf-pass"
    assert findings["dmarc"].reason == "dmarc-reject"


# -- DKIM: pinned keys, key sizes, many signatures ---------------------------------------


async def test_pinned_key_wins_over_dns(
    stage: AuthenticationStage, keys: Keys, dns: DnsTestServer
) -> None:
    """A key pinned in the directory is used even where DNS publishes another one."""
    asked = dns.queries[("mail._domainkey.stp.example.vn", "TXT")]
    from_ = "Văn thư <vanthu@stp.example.vn>"
    forged = sign(keys, message(from_=from_), "stp-forged")
    msg = inbound(forged, mail_from="vanthu@stp.example.vn", ip="10.20.3.4")
    findings = by_method(await stage.inspect(msg))
    assert findings["dkim"].reason == "dkim-fail"
    genuine = sign(keys, message(from_=from_), "stp", "hanoi")
    msg = inbound(genuine, mail_from="vanthu@stp.example.vn", ip="10.20.3.4")
    findings = by_method(await stage.inspect(msg))
    # two signatures, one key pinned and one from DNS: both verified and reported
    assert findings["dkim"].reason == "dkim-pass"
    assert findings["dkim"].auth_result.count("dkim=pass") == 2
    assert "header.d=stp.example.vn" in findings["dkim"].auth_result
    assert "header.d=hanoi.gov.vn" in findings["dkim"].auth_result
    assert dns.queries[("mail._domainkey.stp.example.vn", "TXT")] == asked  # never asked


def _openssl_rsa_pem(bits: int) -> bytes:
    """RSA keys below 1024 bits (cryptography refuses to make them; attackers do not)."""
    done = subprocess.run(
        ["openssl", "genrsa", "-traditional", str(bits)], capture_output=True, check=True
    )
    return done.stdout


def _key_record(pem: bytes) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


@pytest.mark.parametrize(
    ("bits", "expected"),
    [(512, "permerror"), (768, "permerror"), (1024, "pass"), (2048, "pass"), (4096, "pass")],
)
async def test_key_sizes_against_the_default_minimum(keys: Keys, bits: int, expected: str) -> None:
    pem = _openssl_rsa_pem(bits) if bits < 1024 else _pem(bits)
    raw = message(from_="Văn thư <vanthu@keys.example.vn>")
    signature = dkim.sign(raw, b"k", b"keys.example.vn", pem, include_headers=[b"from", b"subject"])
    resolver = PinnedResolver({"txt": {"k._domainkey.keys.example.vn": _key_record(pem)}})
    stage = AuthenticationStage(Directory(keys), resolver, AuthenticationPolicy(), "mx")
    findings = by_method(await stage.inspect(inbound(signature + raw)))
    assert findings["dkim"].auth_result.startswith(f"dkim={expected}")
    if expected == "permerror":
        assert "key" in findings["dkim"].detail


async def test_signatures_beyond_the_limit_are_not_checked(
    stage: AuthenticationStage, keys: Keys
) -> None:
    raw = message()
    for _ in range(7):
        raw = sign(keys, raw, "hanoi")
    findings = by_method(await stage.inspect(inbound(raw)))
    assert findings["dkim"].reason == "dkim-pass"
    payload = findings["dkim"].payload
    assert isinstance(payload, DkimResults)
    assert len(payload.signatures) == AuthenticationPolicy().dkim.max_signatures


# -- agencies whose pinned senders and keys cover subdomains (--include-subdomains) --------


@pytest.mark.parametrize(
    ("signer", "mail_from", "ip", "expect"),
    [
        # mail.soyte... relays for hcm.soyte.example.vn: pinned network and key both count
        ("soyte-sub", "vanthu@hcm.soyte.example.vn", "10.30.1.1", ("pass", "pass", "pass")),
        ("soyte-sub", "vanthu@a.b.soyte.example.vn", "10.30.1.1", ("pass", "pass", "pass")),
        # a subdomain of the agency, but from outside its pinned networks
        ("soyte-sub", "vanthu@hcm.soyte.example.vn", OTHER_IP, ("pass", "fail", "pass")),
        # Sở Tư pháp pins exact domains only: its subdomain gets no pinned key or network
        ("stp-sub", "vanthu@sub.stp.example.vn", "10.20.3.4", ("permerror", "none", "none")),
    ],
)
async def test_pinned_agency_covers_subdomains_when_the_directory_says_so(
    stage: AuthenticationStage,
    keys: Keys,
    signer: str,
    mail_from: str,
    ip: str,
    expect: tuple[str, str, str],
) -> None:
    raw = sign(keys, message(from_=f"Văn thư <vanthu@{keys.signer(signer).domain}>"), signer)
    findings = by_method(await stage.inspect(inbound(raw, mail_from=mail_from, ip=ip)))
    got = tuple(findings[m].reason.partition("-")[2] for m in ("dkim", "spf", "dmarc"))
    assert got == expect, {m: f.detail for m, f in findings.items()}
    if expect[1] != "none":
        assert "subdomain of soyte.example.vn" in findings["spf"].detail


# -- DMARC records and alignment (RFC 7489) -----------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # RFC 7489 appendix B.2.1, B.2.2, B.2.3, B.2.4 (reporting tags are read, not used)
        ("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com", ("none", None, "r", "r")),
        (
            "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; "
            "ruf=mailto:auth-reports@thirdparty.example.net",
            ("none", None, "r", "r"),
        ),
        (
            "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,"
            "mailto:tld-test@thirdparty.example.net!10m; pct=100",
            ("quarantine", None, "r", "r"),
        ),
        ("v=DMARC1; p=reject; sp=none; adkim=s; aspf=s", ("reject", "none", "s", "s")),
        ("v=DMARC1;p=QUARANTINE;sp=reject", ("quarantine", "reject", "r", "r")),
        # 6.6.3: an invalid p= with a valid rua= is p=none; without rua the record is void
        ("v=DMARC1; p=bogus; rua=mailto:d@example.com", ("none", None, "r", "r")),
        ("v=DMARC1; p=bogus", None),
        ("v=DMARC1", None),
        ("v=spf1 -all", None),
        # unknown or bad values of optional tags fall back to the defaults
        ("v=DMARC1; p=reject; adkim=x; aspf=; sp=maybe; fo=1", ("reject", None, "r", "r")),
    ],
)
def test_dmarc_record_parsing(record: str, expected: tuple[str, ...] | None) -> None:
    parsed = parse_dmarc_record(record, "example.com")
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.policy, parsed.subdomain_policy, parsed.adkim, parsed.aspf) == expected


@pytest.mark.parametrize(
    ("authenticated", "from_domain", "mode", "aligned"),
    [
        # RFC 7489 3.1.1 / 3.1.2: relaxed aligns organisational domains, strict needs equality
        ("example.com", "news.example.com", "r", True),
        ("example.com", "news.example.com", "s", False),
        ("news.example.com", "example.com", "r", True),
        ("example.com", "example.com", "s", True),
        ("example.com", "example.org", "r", False),
        # the Public Suffix List decides where organisations end
        ("evil.co.za", "victim.co.za", "r", False),
        ("mail.hanoi.gov.vn", "hanoi.gov.vn", "r", True),
        ("danang.gov.vn", "hanoi.gov.vn", "r", False),
        ("attacker.github.io", "victim.github.io", "r", False),
        ("Mail.Example.COM.", "example.com", "r", True),
    ],
)
def test_dmarc_alignment(authenticated: str, from_domain: str, mode: str, aligned: bool) -> None:
    assert is_aligned(authenticated, from_domain, mode) is aligned


async def test_lookups_made_ahead_are_bounded() -> None:
    """A record naming 40 hosts after a matching ip4: fetching ahead stops at its budget."""
    hosts = " ".join(f"a:h{i}.many.example.net" for i in range(40))
    zone = ZoneResolver({"many.example.net": [{"TXT": f"v=spf1 ip4:{OTHER_IP} {hosts} -all"}]})
    outcome = await check_spf(zone, OTHER_IP, "a@many.example.net", "h")
    assert outcome.result.value == "pass" and outcome.lookups == 0
    assert len(zone.lookups) <= 1 + 30
    # the names pyspf really needs are fetched in a few rounds, concurrently
    zone = ZoneResolver(
        {
            "two.example.net": [{"TXT": "v=spf1 include:i.example.net mx -all"}, {"MX": [10, "m"]}],
            "i.example.net": [{"TXT": "v=spf1 a:x.example.net ~all"}],
            "m": [{"A": SENDER_IP}],
        }
    )
    outcome = await check_spf(zone, SENDER_IP, "a@two.example.net", "h")
    assert outcome.result.value == "pass", outcome.detail


async def test_idn_from_domain_aligns_with_its_a_label(stage: AuthenticationStage) -> None:
    """From: ...@bộ.example.vn and an SPF pass for xn--b-8xm.example.vn are one domain."""
    msg = inbound(message(from_="Văn thư <vanthu@bộ.example.vn>"), mail_from="vanthu@bộ.example.vn")
    findings = by_method(await stage.inspect(msg))
    assert findings["spf"].reason == "spf-pass"
    dmarc = findings["dmarc"].payload
    assert isinstance(dmarc, DmarcOutcome) and dmarc.from_domain == "xn--b-8xm.example.vn"


FROM_FIELDS = [
    "Văn thư <vanthu@hanoi.gov.vn>",
    "vanthu@HaNoi.Gov.VN",
    "Văn thư <vanthu@bộ.example.vn>",
    '"a@evil.example" <vanthu@hanoi.gov.vn>',
    "vanthu@hanoi.gov.vn (Văn thư Sở Nội vụ)",
    "=?utf-8?q?V=C4=83n_th=C6=B0?= <vanthu@hanoi.gov.vn>",
    "<vanthu@[192.0.2.25]>",
]
# fields the originator parse refuses (so does the limits stage): DMARC keeps the
# header's reading for them
REFUSED_FROM_FIELDS = [
    '"vanthu@evil.example"@hanoi.gov.vn',
    "Văn thư <vanthu@hanoi.gov.vn.>",
    "vanthu",
]


@pytest.mark.parametrize("from_", FROM_FIELDS)
def test_from_domain_read_once_is_the_email_packages(from_: str) -> None:
    """DMARC takes the From domain from the originator fields the SMTP handler parsed
    (one parse for limits, spam and DMARC): the same domain the email package's reading
    of the header gives, for display names holding an "@", quoted local parts holding
    one, IDN and upper-case domains, comments, domain literals and no domain at all."""
    msg = inbound(message(from_=from_))
    assert msg.originator_if_parsed is None
    by_email_package = [_from_domain(d) for d in _from_domains(msg)]
    originator = msg.originator  # what the SMTP handler does before the checks
    assert originator.problem is None
    assert msg.originator_if_parsed is originator
    # the raw header's non-ASCII arrives surrogate-escaped, the originator's decoded: DMARC
    # compares both in A-label form
    assert [_from_domain(d) for d in _from_domains(msg)] == by_email_package


async def test_dmarc_reads_the_parsed_originator_not_the_header_again(
    stage: AuthenticationStage, keys: Keys
) -> None:
    """With the originator fields parsed (as every message through the SMTP server has
    them), DMARC's result is the one it gives from the header, and the email package's
    header parse is never made for it."""
    raw = sign(keys, message(), "hanoi")
    msg = inbound(raw)
    _ = msg.originator
    findings = await stage.inspect(msg)
    assert findings[2].auth_result == "dmarc=pass (p=reject) header.from=hanoi.gov.vn"
    assert "headers" not in msg.__dict__  # InboundMessage.headers (a cached property) unbuilt
    idn = inbound(message(from_="Văn thư <vanthu@bộ.example.vn>"), mail_from="vanthu@bộ.example.vn")
    _ = idn.originator
    dmarc = by_method(await stage.inspect(idn))["dmarc"].payload
    assert isinstance(dmarc, DmarcOutcome) and dmarc.from_domain == "xn--b-8xm.example.vn"


def test_unreadable_originator_keeps_the_header_reading() -> None:
    """Two From: fields (refused by the limits stage): DMARC's reading is the header's,
    both domains (a permerror), as before the originator was shared."""
    raw = message(extra_headers="From: other@evil.example\n")
    msg = inbound(raw)
    assert msg.originator.problem is not None
    assert sorted(_from_domains(msg)) == ["evil.example", "hanoi.gov.vn"]


@pytest.mark.parametrize("from_", REFUSED_FROM_FIELDS)
def test_refused_from_fields_keep_the_header_reading(from_: str) -> None:
    msg = inbound(message(from_=from_))
    header_reading = _from_domains(msg)
    assert msg.originator.problem is not None
    assert _from_domains(msg) == header_reading


async def test_a_library_failure_is_a_permerror_not_a_crash() -> None:
    """With lookup_limit raised past pyspf's recursion bound (20), pyspf asserts; we report."""
    chain = {
        f"l{i}.example.net": [{"TXT": f"v=spf1 include:l{i + 1}.example.net"}] for i in range(30)
    }
    outcome = await check_spf(
        ZoneResolver(chain), SENDER_IP, "a@l0.example.net", "h", lookup_limit=50
    )
    assert outcome.result.value == "permerror"
    assert "unevaluable SPF (AssertionError)" in outcome.detail


def test_the_public_suffix_list_is_read_when_the_stage_is_built(stage: AuthenticationStage) -> None:
    # ~80 ms of parsing: at start-up, not on the event loop when the first message comes
    from mailsvc.pipeline.domains import public_suffix_list

    assert public_suffix_list.cache_info().currsize == 1
    assert public_suffix_list().privatesuffix("vanthu.sotttt.daknong.gov.vn") == "daknong.gov.vn"


# -- agencies are alignment boundaries -----------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "from_", "expect"),
    [
        # Sở Tư pháp's own mail: its pinned key and address pass, aligned
        ("stp", "vanthu@stp.example.vn", "dmarc-pass"),
        # Sở Tư pháp writing as Sở Y tế: both domains under example.vn, so relaxed
        # alignment alone would count its pass for soyte.example.vn
        ("stp", "giamdoc@soyte.example.vn", "dmarc-reject"),
        (None, "giamdoc@soyte.example.vn", "dmarc-reject"),  # its SPF pass alone
        ("stp", "giamdoc@hcm.soyte.example.vn", "dmarc-reject"),  # a subdomain of Sở Y tế
        # ... and as the organisational domain itself, which no agency lists: standard
        # relaxed alignment, as for any domain outside the directory
        ("stp", "vanthu@example.vn", "dmarc-none"),
    ],
)
async def test_one_agencys_pass_does_not_vouch_for_another_agencys_from(
    stage: AuthenticationStage, keys: Keys, signer: str | None, from_: str, expect: str
) -> None:
    """The directory's agencies are alignment boundaries: a DKIM or SPF pass counts for a
    From: domain only when both belong to the same agency (a province's agencies share a
    parent domain: sotp.hanoi.gov.vn, soyte.hanoi.gov.vn)."""
    raw = message(from_=f"Giám đốc <{from_}>")
    if signer is not None:
        raw = sign(keys, raw, signer)
    msg = inbound(
        raw, mail_from="vanthu@stp.example.vn", ip="10.20.1.1", helo="mail.stp.example.vn"
    )
    findings = by_method(await stage.inspect(msg))
    assert findings["spf"].reason == "spf-pass"
    assert findings["dmarc"].reason == expect, findings["dmarc"].detail
    if expect == "dmarc-reject":
        assert "another agency" in findings["dmarc"].detail
